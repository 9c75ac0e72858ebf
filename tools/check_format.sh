#!/usr/bin/env bash
# Checks that C++ files are formatted as .clang-format says.
#
#   tools/check_format.sh [--fix] [FILE...]
#
# With no FILE: every C++ file git tracks (*.cpp, *.hpp, *.h, *.cc) under
# include/ src/ tests/ tools/ bench/ examples/. Prints the diff clang-format
# would make to each file that is not formatted, and exits 1 if there was
# one (0 when all are formatted, 2 on a usage or tool error). --fix
# reformats the files in place instead.
#
# Environment: CLANG_FORMAT (default clang-format-14, else clang-format):
# the output differs between clang-format versions, so the check pins one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

fix=0
if [[ ${1:-} == --fix ]]; then
  fix=1
  shift
fi
if [[ ${1:-} == -* ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi

if [[ -n ${CLANG_FORMAT:-} ]]; then
  cf=$CLANG_FORMAT
elif command -v clang-format-14 >/dev/null; then
  cf=clang-format-14
else
  cf=clang-format
fi
if ! command -v "$cf" >/dev/null; then
  echo "check_format: $cf is not installed (set CLANG_FORMAT)" >&2
  exit 2
fi

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  cd "$root"
  mapfile -t files < <(git ls-files -- 'include/*.hpp' 'include/*.h' 'src/*.cpp' 'src/*.hpp' \
    'tests/*.cpp' 'tests/*.hpp' 'tools/*.cpp' 'tools/*.hpp' 'bench/*.cpp' 'bench/*.hpp' \
    'examples/*.cpp' 'examples/*.hpp' '*.cc' '*.h')
fi
if [[ ${#files[@]} -eq 0 ]]; then
  echo "check_format: no files to check" >&2
  exit 2
fi

if [[ $fix -eq 1 ]]; then
  "$cf" -i --style=file "${files[@]}"
  echo "check_format: formatted ${#files[@]} files with $("$cf" --version)"
  exit 0
fi

formatted=$(mktemp)
trap 'rm -f "$formatted"' EXIT
bad=0
for f in "${files[@]}"; do
  if [[ ! -f $f ]]; then
    echo "check_format: no such file: $f" >&2
    exit 2
  fi
  if ! "$cf" --style=file --assume-filename="$f" <"$f" >"$formatted"; then
    echo "check_format: $cf failed on $f" >&2
    exit 2
  fi
  if ! diff -u --label "$f" --label "$f (formatted)" "$f" "$formatted"; then
    bad=$((bad + 1))
  fi
done
if [[ $bad -ne 0 ]]; then
  echo "check_format: $bad of ${#files[@]} files are not formatted ($("$cf" --version));" \
    "tools/check_format.sh --fix FILE... formats them" >&2
  exit 1
fi
echo "check_format: ${#files[@]} files formatted ($("$cf" --version))"
