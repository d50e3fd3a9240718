#!/usr/bin/env bash
# One libFuzzer target's run, for `make fuzz` and `make fuzz-explore` (which run the targets side by
# side, one per core):
#   scripts/fuzz-target.sh replay  <build-dir> <target> <seconds> [libFuzzer flags...]
#       its regression inputs, then its corpus (a copy) for <seconds>; exits non-zero on a finding
#   scripts/fuzz-target.sh explore <build-dir> <target> <seconds> <seed>
#       fresh fuzzing from the corpus and the regressions; a finding is saved under
#       tests/fuzz/findings/ and announced, and the exit status is 0 (CI's exploration)
# The log of each run stays in <build-dir>; the summary is printed in one piece at the end.
set -uo pipefail

mode=${1:?usage: $0 replay|explore <build-dir> <target> <seconds> ...}
build=$(cd "$2" && pwd)
target=$3
seconds=$4
shift 4
repo=$(cd "$(dirname "$0")/.." && pwd)
suffix=$([ "$target" = kl_div ] || echo "_$target")
regressions=$repo/tests/fuzz/regressions$suffix
fuzzer=$build/fuzz_$target
quiet='^#[0-9]+ +(NEW|REDUCE|pulse)'

if [ "$mode" = replay ]; then
    log=$build/fuzz_$target.log
    : > "$log"
    status=0
    if [ -d "$regressions" ]; then
        "$fuzzer" "$regressions"/* > "$log" 2>&1 || status=$?
    fi
    if [ "$status" -eq 0 ]; then
        rm -rf "$build/corpus_$target" && cp -r "$repo/tests/fuzz/corpus$suffix" "$build/corpus_$target"
        (cd "$build" && "./fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 "$@" "corpus_$target" \
             >> "$log" 2>&1) || status=$?
    fi
    summary=$(echo "=== fuzz_$target"; grep -v -E "$quiet" "$log" | tail -n 60)
    printf '%s\n' "$summary"
    exit "$status"
fi

seed=${1:?explore needs a seed}
findings=$repo/tests/fuzz/findings
mkdir -p "$findings"
log=$build/explore_$target.log
rm -rf "$build/explore_$target" && cp -r "$repo/tests/fuzz/corpus$suffix" "$build/explore_$target"
extra=()
[ -d "$regressions" ] && extra=("$regressions")
(cd "$build" && "./fuzz_$target" -max_total_time="$seconds" -seed="$seed" -print_final_stats=1 \
     -artifact_prefix="$findings/$target-" "explore_$target" "${extra[@]}" > "$log" 2>&1)
status=$?
summary=$(
    echo "fuzz_$target:"
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|Done)' "$log"
    if [ "$status" -ne 0 ]; then
        echo "!!!!!! fuzz-explore fuzz_$target (seed $seed) FOUND A FAILURE; its input is in tests/fuzz/findings/:"
        ls -l "$findings"
        grep -v -E "$quiet" "$log" | tail -n 40
    else
        echo "fuzz-explore fuzz_$target (seed $seed): nothing found"
    fi
)
printf '%s\n' "$summary"
exit 0
