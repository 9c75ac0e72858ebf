#!/usr/bin/env bash
# Records the oracle's trace of scenarios: NAME.expected (stdout) and, for a
# scenario the oracle rejects (exit status 2), NAME.stderr.
#
#   tools/conformance/record.sh tests/conformance/NAME.scn ...
#
# Environment: CONFORMANCE (default ../shared/conformance beside the
# repository), PYTHON (default python3).
set -u
here=$(cd "$(dirname "$0")" && pwd)
conf=${CONFORMANCE:-$here/../../../shared/conformance}
py=${PYTHON:-python3}
status=0
for scn in "$@"; do
    base=${scn%.scn}
    "$py" "$conf/oracle.py" "$scn" >"$base.expected" 2>"$base.stderr.tmp"
    rc=$?
    case $rc in
        0) rm -f "$base.stderr.tmp" "$base.stderr" ;;
        2) mv "$base.stderr.tmp" "$base.stderr" ;;
        *) echo "$scn: oracle exited with status $rc:" >&2
           cat "$base.stderr.tmp" >&2
           rm -f "$base.stderr.tmp" "$base.expected"
           status=1 ;;
    esac
done
exit $status
