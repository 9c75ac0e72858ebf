# Runs every example in turn, each under a banner; fails if one fails.
foreach(program IN LISTS PROGRAMS)
  get_filename_component(name ${program} NAME)
  message("\n==================== ${name} ====================")
  execute_process(COMMAND ${program} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "example ${name} failed (${rc})")
  endif()
endforeach()
