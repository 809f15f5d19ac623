#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (-fsanitize=fuzzer,address,undefined)
# and runs each for a fixed time with a memory cap, starting from the seed
# corpus in fuzz/corpus/<target>. New inputs go to build/fuzz/corpus/<target>
# (not committed); crashes are written to build/fuzz/ and fail the run.
#
#   fuzz/run.sh [seconds-per-target=30] [target...]   targets: frame value handshake
#   fuzz/run.sh --ci [target...]                      CI: 60 s each (ZCHAN_FUZZ_SECONDS), every
#                                                     target, fresh build/fuzz/corpus, exit 1 on
#                                                     any crash, leak, timeout or OOM
#
# Not part of ctest: it needs clang and minutes of CPU. -malloc_limit_mb=64
# turns any single allocation over 64 MB into a crash: the bounded decoders
# must never allocate in proportion to a length a payload claims. A crash
# found here becomes a file in fuzz/corpus/<target> and a test in tests/unit
# (see fuzz/README.md).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
out="$root/build/fuzz"
all_targets=(frame value handshake)

ci=0
if [[ ${1:-} == --ci ]]; then
    ci=1
    shift
    secs="${ZCHAN_FUZZ_SECONDS:-60}"
else
    secs="${1:-30}"
    shift || true
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")

# shellcheck source=../scripts/lib.sh
source "$root/scripts/lib.sh"
if [[ -z ${CXX_FUZZ:-} ]]; then
    mapfile -t pkgs < <(zchan_packages_for fuzz)
    zchan_ensure_packages "${pkgs[@]}"
fi

if ((ci)); then
    # CI starts from the committed corpus only, so each run is reproducible from the repo.
    rm -rf "$out/corpus"
fi
mkdir -p "$out"
CXX="${CXX_FUZZ:-clang++}"
command -v "$CXX" >/dev/null || {
    echo "fuzz/run.sh: $CXX not found (apt-get install clang)" >&2
    exit 2
}
flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$root/include" -I"$root/src")

for t in "${targets[@]}"; do
    extra=()
    case "$t" in
        frame) extra=("$root/src/codec.cpp") ;;
        value) ;;
        # The handshake target runs a real server and dialer: the whole library and libzmq.
        handshake) extra=("$root"/src/*.cpp $(pkg-config --cflags --libs libzmq) -pthread) ;;
        *)
            echo "fuzz/run.sh: unknown target $t (one of: ${all_targets[*]})" >&2
            exit 2
            ;;
    esac
    echo "== building ${t}_fuzz"
    "$CXX" "${flags[@]}" "$here/${t}_fuzz.cpp" "${extra[@]}" -o "$out/${t}_fuzz"
done

status=0
for t in "${targets[@]}"; do
    mkdir -p "$out/corpus/$t"
    echo "== running ${t}_fuzz for ${secs}s"
    # -rss_limit_mb: the whole process, libzmq's threads and ASan's shadow included; a leak
    # or an unbounded queue in the server trips it long before the machine notices.
    if ! "$out/${t}_fuzz" "$out/corpus/$t" "$here/corpus/$t" \
        -max_total_time="$secs" -malloc_limit_mb=64 -rss_limit_mb=1024 -max_len=4096 \
        -timeout=20 -print_final_stats=1 -artifact_prefix="$out/${t}-" 2>"$out/${t}.log"; then
        echo "!! ${t}_fuzz failed; see $out/${t}.log and $out/${t}-*"
        tail -40 "$out/${t}.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$out/${t}.log" || true
    fi
done
if ((ci)); then
    if ((status == 0)); then
        echo "== fuzz: ${targets[*]}: no crash in ${secs}s each"
    else
        echo "== fuzz: FAILED; reproduce with build/fuzz/<target>_fuzz <artifact>"
    fi
fi
exit $status
