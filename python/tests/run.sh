#!/usr/bin/env bash
# CTest's python_peer: runs the Python peer's pytest suite against a build tree's C++ programs.
# Usage: run.sh PYTHON BUILD_DIR [WAIT_SECONDS]
# Exit 77 (CTest skip) only when PYTHON has no pytest; a missing pyzmq is a failure, since
# scripts/test installs both (python3-zmq, python3-pytest).
set -euo pipefail
py=$1 build=$2 wait=${3:-30}
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! "$py" -c 'import pytest' 2>/dev/null; then
    echo "python_peer: SKIPPED: $py has no pytest (Debian: apt-get install python3-pytest)"
    exit 77
fi
if ! "$py" -c 'import zmq' 2>/dev/null; then
    echo "python_peer: FAILED: $py has no pyzmq (Debian: apt-get install python3-zmq)" >&2
    exit 1
fi
cd "$here/.."
export ZCHAN_BUILD_DIR="$build" ZCHAN_TEST_WAIT="$wait" PYTHONDONTWRITEBYTECODE=1
export PYTHONPATH="$here/..${PYTHONPATH:+:$PYTHONPATH}"
# Keys and environment of the caller must not leak into the tests' dials.
unset ZCHAN_CURVE_SERVER_KEY ZCHAN_CURVE_SERVER_KEY_FILE ZCHAN_CURVE_SECRET_KEY \
    ZCHAN_CURVE_SECRET_KEY_FILE ZCHAN_CURVE_ALLOW_FILE
exec "$py" -m pytest -q -p no:cacheprovider tests
