#!/usr/bin/env bash
# Packaging test (registered by tests/extra.cmake). Installs the given, already built, zchan
# build tree into a temporary prefix, then builds tests/packaging/consumer and runs it, which must
# print 42, three ways:
#   1. find_package(zchan) from the install tree, via CMAKE_PREFIX_PATH
#   2. find_package(zchan) from the build tree's export, via zchan_DIR
#   3. pkg-config --cflags --libs zchan from the install tree
# In sanitized builds the library is instrumented, so the consumer is built with the same
# -fsanitize flags.
#
# Usage: run.sh --build-dir DIR [--cmake PATH] [--generator NAME] [--cxx PATH] [--config NAME]
#               [--sanitize LIST]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build='' cmake=cmake generator='' cxx=c++ config=RelWithDebInfo sanitize=''
while (($# > 0)); do
    (($# >= 2)) || { echo "run.sh: $1 needs a value" >&2; exit 2; }
    case $1 in
    --build-dir) build=$2 ;;
    --cmake) cmake=$2 ;;
    --generator) generator=$2 ;;
    --cxx) cxx=$2 ;;
    --config) config=$2 ;;
    --sanitize) sanitize=$2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift 2
done
[[ -n $build && -f $build/CMakeCache.txt ]] || { echo "run.sh: --build-dir must be a configured build tree" >&2; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/zchan-packaging.XXXXXX")"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

flags=()
[[ -n $sanitize ]] && flags=("-fsanitize=$sanitize" -fno-omit-frame-pointer)

echo "-- cmake --install $build --prefix $prefix"
"$cmake" --install "$build" --prefix "$prefix" --config "$config" >"$work/install.log" ||
    { cat "$work/install.log"; exit 1; }
test -f "$prefix/include/zchan/zchan.hpp" || { echo "FAIL: zchan/zchan.hpp not installed" >&2; exit 1; }

# check_output NAME EXE: EXE must print exactly 42 and exit 0.
check_output() {
    local out
    out="$("$2")" || { echo "FAIL ($1): consumer exited with $?" >&2; return 1; }
    [[ $out == 42 ]] || { echo "FAIL ($1): consumer printed '$out', expected 42" >&2; return 1; }
    echo "ok ($1): consumer printed 42"
}

# cmake_consumer NAME EXPECTED_ZCHAN_DIR CMAKE_ARGS...: configure, build and run the consumer;
# also checks that find_package found zchan where it should have, not some other copy.
cmake_consumer() {
    local name=$1 expect_dir=$2
    shift 2
    local bin="$work/$name" gen=()
    [[ -n $generator ]] && gen=(-G "$generator")
    echo "-- consumer ($name)"
    "$cmake" -S "$here/consumer" -B "$bin" "${gen[@]}" \
        -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE="$config" \
        -DCMAKE_CXX_FLAGS="${flags[*]}" -DCMAKE_EXE_LINKER_FLAGS="${flags[*]}" \
        -DCMAKE_FIND_PACKAGE_NO_PACKAGE_REGISTRY=ON "$@"
    local found
    found="$(sed -n 's/^zchan_DIR:[A-Z]*=//p' "$bin/CMakeCache.txt")"
    [[ $(realpath "$found") == $(realpath "$expect_dir") ]] ||
        { echo "FAIL ($name): found zchan in '$found', expected '$expect_dir'" >&2; return 1; }
    "$cmake" --build "$bin" --config "$config"
    check_output "$name" "$bin/consumer"
    # zchan::asio: built by the consumer when the package provides it, which it must when this
    # build tree has it.
    if [[ -f $build/zchanAsioTargets.cmake ]]; then
        [[ -x $bin/consumer_asio ]] ||
            { echo "FAIL ($name): the package did not provide zchan::asio" >&2; return 1; }
        check_output "$name, zchan::asio" "$bin/consumer_asio"
    fi
}

config_file="$(find "$prefix" -name zchanConfig.cmake -print -quit)"
[[ -n $config_file ]] || { echo "FAIL: zchanConfig.cmake not installed" >&2; exit 1; }
cmake_consumer install "$(dirname "$config_file")" -DCMAKE_PREFIX_PATH="$prefix"
cmake_consumer build-tree "$build" -Dzchan_DIR="$build"

echo "-- consumer (pkg-config)"
pc_file="$(find "$prefix" -name zchan.pc -print -quit)"
[[ -n $pc_file ]] || { echo "FAIL: zchan.pc not installed" >&2; exit 1; }
if ! command -v pkg-config >/dev/null 2>&1; then
    echo "pkg-config not installed: skipping that part"
else
    read -r -a pc_flags <<<"$(PKG_CONFIG_PATH="$(dirname "$pc_file")" pkg-config --cflags --libs zchan)"
    "$cxx" -std=c++20 "${flags[@]}" "$here/consumer/main.cpp" -o "$work/consumer-pc" "${pc_flags[@]}"
    check_output pkg-config "$work/consumer-pc"
fi
echo "packaging test passed"
