"""`pip install ./python` works offline, with Debian's pip, setuptools and wheel (no index, no
build isolation), and the installed package is complete: it imports from where it was installed
and round-trips a value through its codecs."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import pytest

from conftest import PYTHON_DIR, WAIT


def test_pip_installs_the_package_offline(tmp_path):
    for module in ("pip", "setuptools", "wheel"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed (Debian: apt-get install python3-{module})")
    # A copy: setuptools builds in the source tree (build/, *.egg-info).
    source = tmp_path / "python"
    shutil.copytree(PYTHON_DIR, source, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "tests"))
    target = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1")  # offline: ask nothing
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-index", "--no-build-isolation",
         "--no-deps", "--no-cache-dir", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=4 * WAIT, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    check = (
        "import sys, zchan\n"
        "assert zchan.__file__.startswith(sys.argv[1]), zchan.__file__\n"
        "assert callable(zchan.dial) and callable(zchan.aio.dial)\n"
        "codec = zchan.Struct('myapp.job/1', [('id', zchan.I64), ('name', zchan.String)])\n"
        "job = {'id': 7, 'name': 'seven'}\n"
        "assert codec.loads(codec.dumps(job)) == job\n"
    )
    r = subprocess.run([sys.executable, "-c", check, str(target)], capture_output=True, text=True,
                       timeout=WAIT, env=dict(env, PYTHONPATH=str(target)), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
