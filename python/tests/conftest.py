"""Fixtures: the built C++ programs (the `zchan` tool, the examples) as real processes.

ZCHAN_BUILD_DIR points at a CMake build tree (CTest sets it; default build/dev). Every home
binds tcp://127.0.0.1:* and the test reads the endpoint it prints: no fixed ports, and no
sleeps: a test waits for a line of output or for a result, with wide deadlines.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import threading
import queue
from typing import Dict, Iterator, List, Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUILD = pathlib.Path(os.environ.get("ZCHAN_BUILD_DIR", ROOT / "build" / "dev"))
PYTHON_DIR = ROOT / "python"
# Everything waits with wide margins: a loaded 2-vCPU machine, maybe a sanitized build.
WAIT = float(os.environ.get("ZCHAN_TEST_WAIT", "30"))


def binary(rel: str) -> str:
    p = BUILD / rel
    if not p.exists():
        pytest.fail(f"{p} is not built (set ZCHAN_BUILD_DIR to a build tree)")
    return str(p)


class Proc:
    """A child process whose stdout lines are read by a thread into a queue."""

    def __init__(self, argv: List[str], env: Optional[Dict[str, str]] = None,
                 stdin: bool = False) -> None:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = str(PYTHON_DIR) + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  env=full_env, text=True)
        self.lines: "queue.Queue[Optional[str]]" = queue.Queue()
        self.all: List[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def line(self, timeout: float = WAIT) -> str:
        """The next stdout line; fails the test on EOF or after ``timeout``."""
        try:
            ln = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"{self.argv[0]}: no output within {timeout} s; stderr: {self.stderr()}")
        if ln is None:
            pytest.fail(f"{self.argv[0]} ended (rc {self.p.wait()}); stderr: {self.stderr()}")
        self.all.append(ln)
        return ln

    def until(self, text: str, timeout: float = WAIT) -> str:
        """Reads lines until one contains ``text``; returns it."""
        while True:
            ln = self.line(timeout)
            if text in ln:
                return ln

    def rest(self, timeout: float = WAIT) -> List[str]:
        """Every remaining line, once the process has ended."""
        self.wait(timeout)
        self._t.join(timeout)
        out = []
        while True:
            ln = self.lines.get_nowait() if not self.lines.empty() else None
            if ln is None:
                break
            out.append(ln)
        self.all += out
        return out

    def output(self, timeout: float = WAIT) -> List[str]:
        """Every stdout line of the process, read or not, once it has ended."""
        self.rest(timeout)
        return list(self.all)

    def wait(self, timeout: float = WAIT) -> int:
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            pytest.fail(f"{self.argv} did not end within {timeout} s; stderr: {self.stderr()}")

    def stderr(self) -> str:
        if self.p.poll() is None:
            return "(still running)"
        assert self.p.stderr is not None
        return self.p.stderr.read()

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


@pytest.fixture
def spawn() -> Iterator:
    """spawn(argv, env=None, stdin=False) -> Proc; every process is stopped after the test."""
    procs: List[Proc] = []

    def make(argv: List[str], env: Optional[Dict[str, str]] = None, stdin: bool = False) -> Proc:
        p = Proc(argv, env, stdin)
        procs.append(p)
        return p

    yield make
    for p in procs:
        p.stop()


def python_argv(script: str, *args: str) -> List[str]:
    return [sys.executable, str(script), *args]


@pytest.fixture
def hub(spawn):
    """hub(*args, env=None) -> (Proc, endpoint): a `zchan hub` on an ephemeral port."""

    def start(*args: str, env: Optional[Dict[str, str]] = None):
        p = spawn([binary("tools/zchan/zchan"), "hub", "tcp://127.0.0.1:*", *args], env)
        return p, p.line()

    return start
