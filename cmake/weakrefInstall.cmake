# Install rules, included by the top-level CMakeLists.txt when WEAKREF_INSTALL
# is on (the default when weakref is the top-level project). What a consumer
# does with the result: docs/packaging.md.
#
#   <prefix>/include/weakref/...                 headers
#   <prefix>/lib/libweakref.a (or .so.*)         the library
#   <prefix>/lib/cmake/weakref/                  weakrefConfig.cmake, weakrefConfigVersion.cmake,
#                                                weakrefTargets*.cmake (find_package)
#   <prefix>/lib/pkgconfig/weakref.pc            pkg-config
#   <prefix>/share/weakref/gdb/                  weakref-gdb.py + weakref_printers.py (docs/gdb.md)
#   <prefix>/share/doc/weakref/LICENSE           the license
#   <prefix>/lib/libweakref.so.X.Y.Z-gdb.py      shared builds: gdb's auto-load file
#
# Components: weakref_runtime (the shared library), weakref_development
# (everything needed to build against it), weakref_gdb (the printers).
include(CMakePackageConfigHelpers)

# Destinations, relative to the prefix. Empty cache entries mean the default
# below, computed on every configure so that it follows CMAKE_INSTALL_LIBDIR
# (which GNUInstallDirs changes with the prefix: lib/<multiarch> for /usr).
set(WEAKREF_INSTALL_CMAKEDIR "" CACHE STRING
  "Where weakrefConfig.cmake is installed (default: <libdir>/cmake/weakref)")
set(WEAKREF_INSTALL_PKGCONFIGDIR "" CACHE STRING
  "Where weakref.pc is installed (default: <libdir>/pkgconfig)")
set(WEAKREF_INSTALL_GDBDIR "" CACHE STRING
  "Where the GDB pretty-printers are installed (default: <datadir>/weakref/gdb)")
mark_as_advanced(WEAKREF_INSTALL_CMAKEDIR WEAKREF_INSTALL_PKGCONFIGDIR WEAKREF_INSTALL_GDBDIR)
set(weakref_cmakedir "${CMAKE_INSTALL_LIBDIR}/cmake/weakref")
set(weakref_pkgconfigdir "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
set(weakref_gdbdir "${CMAKE_INSTALL_DATADIR}/weakref/gdb")
foreach(dir cmakedir pkgconfigdir gdbdir)
  string(TOUPPER ${dir} upper)
  if(WEAKREF_INSTALL_${upper})
    set(weakref_${dir} "${WEAKREF_INSTALL_${upper}}")
  endif()
endforeach()

get_target_property(weakref_type weakref TYPE)
if(weakref_type STREQUAL "SHARED_LIBRARY")
  set(WEAKREF_PACKAGE_SHARED ON)
else()
  set(WEAKREF_PACKAGE_SHARED OFF)
endif()

# --- headers and library ----------------------------------------------------
install(TARGETS weakref EXPORT weakrefTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT weakref_runtime
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT weakref_runtime
          NAMELINK_COMPONENT weakref_development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT weakref_development)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/weakref
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT weakref_development
  FILES_MATCHING PATTERN "*.hpp")
# The license goes with every copy (it asks for that).
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE
  DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT weakref_development)

# --- CMake package ------------------------------------------------------------
# The targets file carries weakref::weakref with its usage requirements
# (include directory, C++20, Threads::Threads, WEAKREF_SHARED for a shared
# build); weakrefConfig.cmake finds Threads before loading it.
install(EXPORT weakrefTargets NAMESPACE weakref::
  DESTINATION ${weakref_cmakedir} COMPONENT weakref_development)
configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/weakrefConfig.cmake.in
  ${PROJECT_BINARY_DIR}/weakrefConfig.cmake
  INSTALL_DESTINATION ${weakref_cmakedir}
  PATH_VARS weakref_gdbdir)
# Before 1.0 a minor release may break the API: find_package(weakref 0.1)
# accepts 0.1.z only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/weakrefConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/weakrefConfig.cmake ${PROJECT_BINARY_DIR}/weakrefConfigVersion.cmake
  DESTINATION ${weakref_cmakedir} COMPONENT weakref_development)

# --- pkg-config -------------------------------------------------------------
# The prefix is written at install time, so that `cmake --install build
# --prefix /somewhere` gives a weakref.pc that points at /somewhere.
# No -std flag in Cflags: the consumer picks its standard (C++20 or later).
foreach(kind LIB INCLUDE)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${kind}DIR}")
    set(WEAKREF_PC_${kind}DIR "${CMAKE_INSTALL_${kind}DIR}")
  else()
    set(WEAKREF_PC_${kind}DIR "\${prefix}/${CMAKE_INSTALL_${kind}DIR}")
  endif()
endforeach()
set(WEAKREF_PC_CFLAGS "")
set(WEAKREF_PC_LIBS "")
set(WEAKREF_PC_LIBS_PRIVATE "")
if(WEAKREF_CHECK_THREADS)  # as the exported target (CMakeLists.txt)
  string(APPEND WEAKREF_PC_CFLAGS " -DWEAKREF_CHECK_THREADS=1")
endif()
if(WEAKREF_PACKAGE_SHARED)
  string(APPEND WEAKREF_PC_CFLAGS " -DWEAKREF_SHARED")
  if(CMAKE_THREAD_LIBS_INIT)
    string(APPEND WEAKREF_PC_LIBS_PRIVATE " ${CMAKE_THREAD_LIBS_INIT}")
  endif()
elseif(CMAKE_THREAD_LIBS_INIT)  # static: the consumer links the dependencies
  string(APPEND WEAKREF_PC_LIBS " ${CMAKE_THREAD_LIBS_INIT}")
endif()
set(WEAKREF_PC_PREFIX "@WEAKREF_PC_PREFIX@")  # kept for the install step
configure_file(${CMAKE_CURRENT_LIST_DIR}/weakref.pc.in ${PROJECT_BINARY_DIR}/weakref.pc.in @ONLY)
install(CODE "
  set(WEAKREF_PC_PREFIX \"\${CMAKE_INSTALL_PREFIX}\")
  configure_file(\"${PROJECT_BINARY_DIR}/weakref.pc.in\" \"${PROJECT_BINARY_DIR}/weakref.pc\" @ONLY)
" COMPONENT weakref_development)
install(FILES ${PROJECT_BINARY_DIR}/weakref.pc
  DESTINATION ${weakref_pkgconfigdir} COMPONENT weakref_development)

# --- GDB pretty-printers (docs/gdb.md) -------------------------------------
install(FILES ${PROJECT_SOURCE_DIR}/tools/gdb/weakref-gdb.py ${PROJECT_SOURCE_DIR}/tools/gdb/weakref_printers.py
  DESTINATION ${weakref_gdbdir} COMPONENT weakref_gdb)
# A shared library also gets gdb's auto-load file next to it
# (<lib>.so.X.Y.Z-gdb.py): gdb loads the printers with the library when the
# directory is in its auto-load safe-path.
if(WEAKREF_PACKAGE_SHARED AND NOT WIN32 AND NOT APPLE)
  if(IS_ABSOLUTE "${weakref_gdbdir}" OR IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
    set(weakref_gdb_dir "${weakref_gdbdir}")
    if(NOT IS_ABSOLUTE "${weakref_gdb_dir}")
      set(weakref_gdb_dir "${CMAKE_INSTALL_PREFIX}/${weakref_gdb_dir}")
    endif()
  else()
    file(RELATIVE_PATH weakref_gdb_dir "/${CMAKE_INSTALL_LIBDIR}" "/${weakref_gdbdir}")
  endif()
  file(GENERATE OUTPUT ${PROJECT_BINARY_DIR}/gdb-auto-load/$<TARGET_FILE_NAME:weakref>-gdb.py
    CONTENT "# gdb auto-loads this file with $<TARGET_FILE_NAME:weakref> (generated by CMake;
# docs/gdb.md). It loads the weakref pretty-printers for that library.
import os
import sys

import gdb

_weakref_printers_dir = os.path.join(os.path.dirname(os.path.realpath(__file__)),
                                     \"${weakref_gdb_dir}\")
if _weakref_printers_dir not in sys.path:
    sys.path.insert(0, _weakref_printers_dir)

import weakref_printers  # noqa: E402

weakref_printers.register_printers(gdb.current_objfile())
")
  install(FILES ${PROJECT_BINARY_DIR}/gdb-auto-load/$<TARGET_FILE_NAME:weakref>-gdb.py
    DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT weakref_gdb)
endif()
