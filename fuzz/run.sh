#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# and runs each for a fixed time with a memory cap, starting from the seed
# corpus in fuzz/corpus/<target>. New inputs go to build/fuzz/corpus/<target>
# (not committed); crashes are written to build/fuzz/ and fail the run.
#
#   fuzz/run.sh [seconds-per-target=30] [target...]    targets: frame value
#
# Not part of ctest: it needs clang and minutes of CPU. -malloc_limit_mb=64
# turns any single allocation over 64 MB into a crash: the bounded value
# decoder must never allocate in proportion to a length a payload claims.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="$root/build/fuzz"
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frame value)

mkdir -p "$out"
CXX="${CXX_FUZZ:-clang++}"
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/include" -I"$root/src")

for t in "${targets[@]}"; do
    extra=()
    [ "$t" = frame ] && extra=("$root/src/codec.cpp")
    echo "== building ${t}_fuzz"
    "$CXX" "${flags[@]}" "$here/${t}_fuzz.cpp" "${extra[@]}" -o "$out/${t}_fuzz"
done

status=0
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t"
    echo "== running ${t}_fuzz for ${secs}s"
    if ! "$out/${t}_fuzz" "$out/corpus/$t" "$here/corpus/$t" \
        -max_total_time="$secs" -malloc_limit_mb=64 -rss_limit_mb=1024 -max_len=4096 \
        -timeout=10 -print_final_stats=1 -artifact_prefix="$out/${t}-" 2>"$out/${t}.log"; then
        echo "!! ${t}_fuzz failed; see $out/${t}.log and $out/${t}-*"
        tail -40 "$out/${t}.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/${t}.log" || true
    fi
done
exit $status
