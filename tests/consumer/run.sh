#!/usr/bin/env bash
# Builds the consumer project (tests/consumer) against weakref every way a
# user can get the library, each from scratch in a fresh temporary directory,
# and runs it:
#
#   install      configure + build + install the library into a temp prefix
#   find_package the consumer finds it with find_package(weakref CONFIG)
#   version      ... and find_package(weakref 1.0) refuses 0.x
#   subdirectory add_subdirectory(<this checkout>)
#   FetchContent SOURCE_DIR = this checkout, and URL = an archive of it
#   pkg-config   c++ main.cpp $(pkg-config --cflags --libs weakref)
#   shared       the same with BUILD_SHARED_LIBS=ON (find_package, pkg-config)
#   gdb          the installed pretty-printers: sourced (static) and
#                auto-loaded with libweakref.so (skipped without gdb)
#
# Prints one line per check; exits 1 if any failed (its log is shown).
# Usage: tests/consumer/run.sh    (env: JOBS=2, CXX, KEEP=1 keeps the temp dir)
set -uo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
consumer=$src/tests/consumer
jobs=${JOBS:-2}
cxx=${CXX:-g++}
work=$(mktemp -d "${TMPDIR:-/tmp}/weakref-consumer.XXXXXX")
if [[ -z ${KEEP:-} ]]; then
  trap 'rm -rf "$work"' EXIT
else
  echo "work directory: $work"
fi
cd "$work"
mkdir logs

generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
release=(-DCMAKE_BUILD_TYPE=Release)

failed=0
# check NAME COMMAND...: runs COMMAND (a function below) with errexit, its
# output in a log; prints PASS/FAIL/SKIP. A command that prints "SKIP: why"
# as its last line and returns 0 is a skip.
check() {
  local name=$1 start=$SECONDS log rc
  shift
  log=$work/logs/$(tr -c 'A-Za-z0-9\n' _ <<<"$name").log
  (set -e; "$@") >"$log" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]] && tail -n 1 "$log" | grep -q '^SKIP: '; then
    printf 'SKIP  %s (%s)\n' "$name" "$(tail -n 1 "$log" | sed 's/^SKIP: //')"
  elif [[ $rc -eq 0 ]]; then
    printf 'PASS  %s (%ds)\n' "$name" $((SECONDS - start))
  else
    printf 'FAIL  %s (exit %d), last lines of its log:\n' "$name" "$rc"
    tail -n 40 "$log" | sed 's/^/      | /'
    failed=1
  fi
}

# build_library DIR PREFIX [cmake args...]: the library alone, installed.
build_library() {
  local dir=$1 prefix=$2
  shift 2
  cmake -S "$src" -B "$dir" "${generator[@]}" "${release[@]}" \
    -DWEAKREF_BUILD_TESTS=OFF -DWEAKREF_BUILD_EXAMPLES=OFF "$@"
  cmake --build "$dir" -j "$jobs"
  # --prefix at install time, not CMAKE_INSTALL_PREFIX: the package and
  # weakref.pc must follow it.
  cmake --install "$dir" --prefix "$prefix"
}

# build_consumer DIR [cmake args...]: configure, build and run the consumer.
build_consumer() {
  local dir=$1
  shift
  cmake -S "$consumer" -B "$dir" "${generator[@]}" "${release[@]}" "$@"
  cmake --build "$dir" -j "$jobs"
  "$dir/consumer"
}

expect_files() {
  local f
  for f in "$@"; do
    [[ -e $f ]] || { echo "missing: $f"; return 1; }
    echo "installed: $f"
  done
}

libdir_of() {  # the lib directory of an installed prefix (lib or lib64 ...)
  dirname "$(find "$1" -name weakrefConfig.cmake -path '*/cmake/weakref/*')" | sed 's|/cmake/weakref$||'
}

# --- static (the default) --------------------------------------------------
static_install() {
  build_library "$work/lib-static" "$work/static"
  local lib
  lib=$(libdir_of "$work/static")
  expect_files "$work/static/include/weakref/weakref.hpp" \
    "$work/static/include/weakref/detail/object.hpp" \
    "$lib/libweakref.a" \
    "$lib/cmake/weakref/weakrefConfig.cmake" \
    "$lib/cmake/weakref/weakrefConfigVersion.cmake" \
    "$lib/cmake/weakref/weakrefTargets.cmake" \
    "$lib/pkgconfig/weakref.pc" \
    "$work/static/share/weakref/gdb/weakref-gdb.py" \
    "$work/static/share/weakref/gdb/weakref_printers.py" \
    "$work/static/share/doc/weakref/LICENSE"
  grep -q "^prefix=$work/static\$" "$lib/pkgconfig/weakref.pc"
}

static_find_package() {
  build_consumer "$work/c-find" -DCMAKE_PREFIX_PATH="$work/static"
}

version_refused() {
  local out
  if out=$(cmake -S "$consumer" -B "$work/c-version" "${generator[@]}" \
    -DCMAKE_PREFIX_PATH="$work/static" -DWEAKREF_CONSUMER_VERSION=1.0 2>&1); then
    echo "$out"
    echo "find_package(weakref 1.0) accepted version 0.x"
    return 1
  fi
  echo "$out"
  # Refused for the version, not for anything else.
  grep -q 'compatible with requested version "1.0"' <<<"$out"
  grep -q 'weakrefConfig.cmake, version: 0\.' <<<"$out"
}

subdirectory() {
  build_consumer "$work/c-subdir" -DWEAKREF_CONSUMER_MODE=subdirectory -DWEAKREF_SOURCE_DIR="$src"
}

fetch_source_dir() {
  build_consumer "$work/c-fetch" -DWEAKREF_CONSUMER_MODE=fetchcontent -DWEAKREF_SOURCE_DIR="$src"
}

fetch_url() {
  # An archive of the checkout as a user would download it: the files git
  # knows (committed or not ignored), else everything but build trees.
  local archive=$work/weakref-src.tar.gz
  if git -C "$src" rev-parse --show-toplevel >/dev/null 2>&1 &&
    [[ $(git -C "$src" rev-parse --show-toplevel) == "$src" ]]; then
    (cd "$src" && git ls-files -z --cached --others --exclude-standard |
      xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
      tar --null -T - -czf "$archive")
  else
    tar -C "$src" --exclude=./build --exclude=./.git -czf "$archive" .
  fi
  build_consumer "$work/c-url" -DWEAKREF_CONSUMER_MODE=fetchcontent_url -DWEAKREF_URL="$archive"
}

pkg_config_build() {  # PREFIX OUTPUT [extra link flags...]
  local prefix=$1 out=$2 lib
  shift 2
  lib=$(libdir_of "$prefix")
  export PKG_CONFIG_PATH=$lib/pkgconfig
  echo "pkg-config --modversion weakref: $(pkg-config --modversion weakref)"
  echo "pkg-config --cflags --libs weakref: $(pkg-config --cflags --libs weakref)"
  # shellcheck disable=SC2046
  "$cxx" -std=c++20 -O2 "$consumer/main.cpp" -o "$out" $(pkg-config --cflags --libs weakref) "$@"
  "$out"
}

static_pkg_config() {
  command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; return 0; }
  pkg_config_build "$work/static" "$work/consumer-pc"
}

# --- shared ----------------------------------------------------------------
uses_shared_lib() {  # EXECUTABLE: it must load libweakref.so from the prefix
  local needed
  needed=$(ldd "$1" | grep 'libweakref\.so' || true)
  echo "ldd: ${needed:-<no libweakref.so>}"
  [[ $needed == *"$work/shared/"* ]]
}

shared_install() {
  build_library "$work/lib-shared" "$work/shared" -DBUILD_SHARED_LIBS=ON
  local lib
  lib=$(libdir_of "$work/shared")
  expect_files "$lib/libweakref.so" "$lib/libweakref.so.0" "$lib/pkgconfig/weakref.pc"
  ls "$lib"/libweakref.so.*-gdb.py
  [[ ! -e $lib/libweakref.a ]]
  grep -q 'WEAKREF_SHARED' "$lib/pkgconfig/weakref.pc"
}

shared_find_package() {
  build_consumer "$work/c-find-shared" -DCMAKE_PREFIX_PATH="$work/shared"
  uses_shared_lib "$work/c-find-shared/consumer"
}

shared_pkg_config() {
  command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; return 0; }
  pkg_config_build "$work/shared" "$work/consumer-pc-shared" -Wl,-rpath,"$(libdir_of "$work/shared")"
  uses_shared_lib "$work/consumer-pc-shared"
}

# --- gdb printers from the installed trees ---------------------------------
# gdb_target (tests/gdb) built against the installed library (no debug
# information in the library: the printers use their fallback layout).
gdb_run() {  # EXECUTABLE [gdb options...]: prints a few handles
  local exe=$1
  shift
  gdb -batch -nx "$@" -ex 'break gdb_checkpoint' -ex 'run >/dev/null' -ex up \
    -ex 'print node' -ex 'print node_locked' -ex 'print live_ref' -ex 'print dead_ref' -ex 'print live_proxy' \
    -ex 'print live_method' -ex 'print live_fin' -ex 'print dead_fin' -ex 'print by_number' \
    -ex kill "$exe" 2>&1
}

gdb_expect() {  # OUTPUT: the printers' texts must be there
  local out=$1 pattern
  echo "$out"
  for pattern in \
    "[$]1 = weakref::Strong<Node> <Node object at 0x[0-9a-f]+> \(strong 3, weakrefs 5\)" \
    "[$]2 = weakref::Strong<Node> <Node object at 0x[0-9a-f]+> \(strong 3, weakrefs 5\)" \
    "= weakref::ref<Node> <weakref at 0x[0-9a-f]+; to 'Node' at 0x[0-9a-f]+> \(strong 3, callback\)" \
    "= weakref::ref<Node> <weakref at 0x[0-9a-f]+; dead>\$" \
    "= weakref::proxy<Node> <weakproxy at 0x[0-9a-f]+ to Node at 0x[0-9a-f]+> \(strong 3\)" \
    "= weakref::WeakMethod<void \(Node::\*\)\(int\)> <weakref at 0x[0-9a-f]+; to 'Node'" \
    "= weakref::finalize <finalize object at 0x[0-9a-f]+; for 'Node' at 0x[0-9a-f]+> \(alive, atexit\)" \
    "= weakref::finalize <finalize object at 0x[0-9a-f]+; dead>" \
    "= weakref::WeakValueDictionary<int, Node> with 10 entries = \{\[0\] = 0x[0-9a-f]+, \[1\] = "; do
    grep -Eq "$pattern" <<<"$out" || { echo "not printed: $pattern"; return 1; }
  done
}

gdb_sourced_static() {
  command -v gdb >/dev/null || { echo "SKIP: gdb is not installed"; return 0; }
  command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; return 0; }
  PKG_CONFIG_PATH=$(libdir_of "$work/static")/pkgconfig
  export PKG_CONFIG_PATH
  # shellcheck disable=SC2046
  "$cxx" -std=c++20 -O0 -g "$src/tests/gdb/gdb_target.cpp" -o "$work/gdb-static" \
    $(pkg-config --cflags --libs weakref)
  gdb_expect "$(gdb_run "$work/gdb-static" -ex "source $work/static/share/weakref/gdb/weakref-gdb.py")"
}

gdb_autoload_shared() {
  command -v gdb >/dev/null || { echo "SKIP: gdb is not installed"; return 0; }
  command -v pkg-config >/dev/null || { echo "SKIP: pkg-config is not installed"; return 0; }
  local lib
  lib=$(libdir_of "$work/shared")
  export PKG_CONFIG_PATH=$lib/pkgconfig
  # shellcheck disable=SC2046
  "$cxx" -std=c++20 -O0 -g "$src/tests/gdb/gdb_target.cpp" -o "$work/gdb-shared" \
    $(pkg-config --cflags --libs weakref) -Wl,-rpath,"$lib"
  gdb_expect "$(gdb_run "$work/gdb-shared" -iex "add-auto-load-safe-path $lib")"
}

check "install (static, cmake --install --prefix)" static_install
check "find_package(weakref CONFIG) + weakref::weakref" static_find_package
check "find_package(weakref 1.0) refuses 0.x (SameMinorVersion)" version_refused
check "add_subdirectory(<checkout>)" subdirectory
check "FetchContent SOURCE_DIR <checkout>" fetch_source_dir
check "FetchContent URL <archive of the checkout>" fetch_url
check "pkg-config (static)" static_pkg_config
check "install (BUILD_SHARED_LIBS=ON)" shared_install
check "find_package (shared), runs against libweakref.so" shared_find_package
check "pkg-config (shared)" shared_pkg_config
check "gdb: installed printers, sourced (static)" gdb_sourced_static
check "gdb: printers auto-loaded with libweakref.so" gdb_autoload_shared

if [[ $failed -ne 0 ]]; then
  echo "consumer checks FAILED"
  exit 1
fi
echo "consumer checks passed"
