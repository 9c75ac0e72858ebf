#!/usr/bin/env bash
# Checks a directory of scenarios against their stored oracle traces, as
# ../shared/conformance/check-all.sh does for the shared ones (and with its
# compare.py, never a copy):
#
#   tools/conformance/check_dir.sh [--allow-empty] DIR REPLAY [ARGS...]
#
# For each DIR/NAME.scn: the replay's stdout must agree with NAME.expected
# (compare.py). When NAME.stderr exists the scenario is an error case: the
# replay must exit with status 2 and print exactly NAME.stderr on stderr;
# otherwise it must exit 0. Prints one line per failure, then
# "N passed, M failed"; exits 1 when M > 0, 2 on a usage error (or an empty
# DIR without --allow-empty).
# Environment: CONFORMANCE (default: ../shared/conformance beside the
# repository), PYTHON (default python3), TIMEOUT (seconds, default 60),
# VERBOSE=1 shows compare.py's side-by-side view of each failure.
set -u
allow_empty=0
if [ "${1:-}" = --allow-empty ]; then allow_empty=1; shift; fi
if [ $# -lt 2 ]; then
    echo "usage: $0 [--allow-empty] DIR REPLAY [ARGS...]" >&2
    exit 2
fi
dir=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
conf=${CONFORMANCE:-$here/../../../shared/conformance}
compare=$conf/compare.py
py=${PYTHON:-python3}
limit=${TIMEOUT:-60}
if [ ! -f "$compare" ]; then
    echo "$0: no compare.py in $conf (set CONFORMANCE)" >&2
    exit 2
fi
shopt -s nullglob
scenarios=("$dir"/*.scn)
if [ ${#scenarios[@]} -eq 0 ]; then
    if [ $allow_empty = 1 ]; then echo "0 passed, 0 failed (no scenarios in $dir)"; exit 0; fi
    echo "$0: no scenarios in $dir" >&2
    exit 2
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

pass=0 fail=0
for scn in "${scenarios[@]}"; do
    name=$(basename "$scn" .scn)
    exp=${scn%.scn}.expected
    experr=${scn%.scn}.stderr
    if [ ! -f "$exp" ]; then
        echo "FAIL $name: no $name.expected"
        fail=$((fail + 1)); continue
    fi
    want_rc=0
    [ -f "$experr" ] && want_rc=2
    timeout "$limit" "$@" "$scn" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    why=
    if ! msg=$("$py" "$compare" --brief --scenario "$scn" "$exp" "$tmp/out" 2>&1); then
        why=$msg
    fi
    if [ $rc -ne $want_rc ]; then
        w="replay exited with status $rc, expected $want_rc"
        [ $rc -eq 124 ] && w="replay timed out after ${limit}s"
        err=$(head -n 1 "$tmp/err")
        [ -n "$err" ] && w="$w ($err)"
        why=${why:+$why; }$w
    elif [ $want_rc -eq 2 ] && ! cmp -s "$experr" "$tmp/err"; then
        why=${why:+$why; }"stderr $(head -n 1 "$tmp/err" | cut -c1-200), expected $(head -n 1 "$experr")"
    fi
    if [ -z "$why" ]; then
        pass=$((pass + 1)); continue
    fi
    fail=$((fail + 1))
    echo "FAIL $name: $why"
    if [ "${VERBOSE:-0}" = 1 ]; then
        "$py" "$compare" --scenario "$scn" "$exp" "$tmp/out" | sed 's/^/    /'
    fi
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
