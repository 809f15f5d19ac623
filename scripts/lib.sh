# shellcheck shell=bash
# Shared set-up for scripts/test and scripts/demo: Debian packages, configure, build.
# Sourced, never executed; the caller has already done `set -euo pipefail`.
#
# Environment knobs:
#   ZCHAN_JOBS    parallel build jobs (default 2: CI and dev machines have 2 cores)
#   ZCHAN_NO_APT  set to 1 to skip the package check (e.g. a non-Debian machine you set up by hand)

ZCHAN_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ZCHAN_JOBS="${ZCHAN_JOBS:-2}"
ZCHAN_PRESETS=(dev release asan tsan tidy)
# What a fresh Debian 12 machine lacks to configure, build and test every preset but tidy.
ZCHAN_PACKAGES=(build-essential cmake g++ pkg-config libzmq3-dev cppzmq-dev libcereal-dev
    libgtest-dev libbenchmark-dev libasio-dev iproute2 nftables python3 python3-zmq
    python3-pytest python3-pip python3-setuptools python3-wheel)

zchan_log() { printf '==> %s\n' "$*" >&2; }
zchan_die() {
    printf '%s: error: %s\n' "${0##*/}" "$*" >&2
    exit 2
}

# zchan_check_preset NAME: dies unless NAME is one of ZCHAN_PRESETS.
zchan_check_preset() {
    local p
    for p in "${ZCHAN_PRESETS[@]}"; do
        [[ $1 == "$p" ]] && return 0
    done
    zchan_die "unknown preset '$1' (one of: ${ZCHAN_PRESETS[*]})"
}

# zchan_ensure_packages PKG...: apt-get installs whichever of PKG are missing, and nothing
# (not even `apt-get update`) when all are there, so a second run costs one dpkg-query.
zchan_ensure_packages() {
    [[ ${ZCHAN_NO_APT:-0} == 1 ]] && return 0
    if ! command -v dpkg-query >/dev/null 2>&1; then
        zchan_log "not a Debian system: make sure these are installed: $*"
        return 0
    fi
    local pkg missing=()
    for pkg in "$@"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0

    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 ||
            zchan_die "need root or sudo to install: ${missing[*]}"
        sudo=(sudo)
    fi
    zchan_log "installing missing packages: ${missing[*]}"
    # Explicit `|| return`: callers may run this inside `if`, where set -e does not apply.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}" || return 1
}

# zchan_packages_for PRESET: prints the packages PRESET needs, one per line. "fuzz" (not a
# preset: fuzz/run.sh) adds clang and its libFuzzer runtime, which clang only recommends.
zchan_packages_for() {
    printf '%s\n' "${ZCHAN_PACKAGES[@]}"
    [[ $1 == tidy ]] && echo clang-tidy
    [[ $1 == fuzz ]] && printf '%s\n' clang libclang-rt-dev
    return 0
}

# zchan_maybe_disable_aslr PRESET ARGS...: GCC 12's ASan and TSan runtimes assume at most 28 bits
# of mmap randomisation and die at start-up ("unexpected memory mapping", endless DEADLYSIGNAL)
# on kernels configured with more. For sanitizer presets on such kernels, re-exec the calling
# script with ASLR off for it and its children (build-time test discovery runs the test
# binaries too). Does nothing where `setarch -R` is not permitted (e.g. some containers).
zchan_maybe_disable_aslr() {
    local preset=$1
    shift
    [[ $preset == asan || $preset == tsan ]] || return 0
    [[ ${ZCHAN_ASLR_OFF:-0} == 1 ]] && return 0
    local bits
    bits="$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)"
    ((bits > 28)) || return 0
    if setarch "$(uname -m)" -R true 2>/dev/null; then
        zchan_log "vm.mmap_rnd_bits=$bits: running with ASLR disabled for the $preset runtime"
        ZCHAN_ASLR_OFF=1 exec setarch "$(uname -m)" -R "$0" "$@"
    fi
    zchan_log "warning: vm.mmap_rnd_bits=$bits and ASLR cannot be disabled here; if the" \
        "$preset runtime crashes at start-up, run: sysctl vm.mmap_rnd_bits=28"
}

# zchan_configure PRESET: runs `cmake --preset PRESET` unless build/PRESET is already configured
# (later builds re-run CMake by themselves when a CMakeLists.txt changes). Re-configures when
# CMakePresets.json is newer than the cache, or when a previous configure did not finish.
zchan_configure() {
    local preset=$1 bin="$ZCHAN_ROOT/build/$1"
    if [[ -f $bin/CMakeCache.txt && (-f $bin/Makefile || -f $bin/build.ninja) &&
        ! $ZCHAN_ROOT/CMakePresets.json -nt $bin/CMakeCache.txt ]]; then
        return 0
    fi
    zchan_log "configuring preset $preset"
    (cd "$ZCHAN_ROOT" && cmake --preset "$preset")
}

# zchan_build PRESET [TARGET...]: incremental build of TARGETs (default: everything).
zchan_build() {
    local preset=$1
    shift
    local targets=()
    (($# > 0)) && targets=(--target "$@")
    zchan_log "building preset $preset${1:+ (targets: $*)} with $ZCHAN_JOBS jobs"
    (cd "$ZCHAN_ROOT" && cmake --build --preset "$preset" -j "$ZCHAN_JOBS" "${targets[@]}")
}

# zchan_setup PRESET: packages + configure; what both scripts do before building.
zchan_setup() {
    local pkgs
    mapfile -t pkgs < <(zchan_packages_for "$1")
    zchan_ensure_packages "${pkgs[@]}" || return 1
    zchan_configure "$1"
}
