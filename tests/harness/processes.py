"""Child processes of the test harness: spawned in their own process group, killed as a group.

Every child runs in its own session (its own process group), is killed with its whole group when
its context manager exits and again at interpreter exit, and gets SIGTERM when the thread that
spawned it dies (PR_SET_PDEATHSIG, main thread only).
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]   # the repository


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_children: set[subprocess.Popen] = set()
_children_lock = threading.Lock()


def _die_with_parent() -> None:
    # Linux: SIGTERM this child when the thread that spawned it dies (even by SIGKILL).
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def spawn(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path = ROOT,
          stdin: Any = subprocess.DEVNULL, stdout: Any = None, stderr: Any = None) -> subprocess.Popen:
    # PDEATHSIG fires when the spawning *thread* exits, so only use it from the main thread.
    preexec = _die_with_parent if threading.current_thread() is threading.main_thread() else None
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
                            start_new_session=True, preexec_fn=preexec)
    with _children_lock:
        _children.add(proc)
    return proc


def kill_process_group(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """SIGTERM the child's whole process group, SIGKILL what is left after `timeout`, reap the child."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _group_alive(proc.pid):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.05)
        if not _group_alive(proc.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(1.0)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            with contextlib.suppress(OSError):
                stream.close()
    with _children_lock:
        _children.discard(proc)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True  # an unreaped zombie leader counts too: kill_process_group reaps it with wait()


def live_children() -> list[subprocess.Popen]:
    """The harness's child processes that are still running."""
    with _children_lock:
        return [p for p in _children if p.poll() is None]


@atexit.register
def _kill_all_children() -> None:
    with _children_lock:
        procs = list(_children)
    for proc in procs:
        kill_process_group(proc, timeout=2.0)


def tail(path: Path, n: int = 4000) -> str:
    """The end of a log file, for error messages."""
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""
