#!/usr/bin/env bash
# Runs the libFuzzer target on the replay (tools/replay/fuzz_replay.cpp) for
# a while, seeded with every scenario we have:
#
#   tools/conformance/run_fuzzer.sh FUZZ_REPLAY SECONDS [WORKDIR]
#
# WORKDIR (default build/fuzz-work) keeps the corpus between runs and
# receives crash-*/leak-*/timeout-* artifacts. Exits non-zero when libFuzzer
# finds a crash, a leak, a sanitizer report or a timeout.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 FUZZ_REPLAY SECONDS [WORKDIR]" >&2
    exit 2
fi
fuzzer=$1 seconds=$2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${3:-$root/build/fuzz-work}
conf=${CONFORMANCE:-$root/../shared/conformance}
mkdir -p "$work/corpus" "$work/seeds"
# Seeds: the shared and own scenarios (errors and regressions too) and a
# few generated ones.
for f in "$conf"/scenarios/*.scn "$root"/tests/conformance/*.scn \
         "$root"/tests/conformance/*/*.scn; do
    [ -f "$f" ] && cp "$f" "$work/seeds/$(basename "$(dirname "$f")")_$(basename "$f")"
done
python3 "$here/gen_scenarios.py" --seed 99 --count 40 --out "$work/seeds"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -dict="$root/tools/replay/fuzz_replay.dict" -artifact_prefix="$work/" \
    -print_final_stats=1 "$work/corpus" "$work/seeds"
