"""A real PostgreSQL server for tests: Debian's binaries, a cluster in a temporary directory, run
as a non-root user (PostgreSQL refuses root) on a free 127.0.0.1 port, stopped afterwards.

    with postgres_server() as url:      # postgresql://streamchat@127.0.0.1:PORT/streamchat
        ...

`find_binaries()` is None where PostgreSQL is not installed: tests skip with that reason.
"""
from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

RUN_AS = "nobody"   # when the tests run as root
START_TIMEOUT_S = 30.0
MAX_LIFETIME_S = 1800
MISSING = "PostgreSQL server binaries not found (apt-get install postgresql; `make test` does it as root)"


def find_binaries() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres, else None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for path in reversed(candidates):
        if os.access(f"{path}/initdb", os.X_OK) and os.access(f"{path}/postgres", os.X_OK):
            return Path(path)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", RUN_AS, "--", *cmd]


@contextlib.contextmanager
def postgres_server(database: str = "streamchat", user: str = "streamchat") -> Iterator[str]:
    """Start a throwaway cluster; yield its URL (trust auth, 127.0.0.1 only); stop and delete it."""
    bin_dir = find_binaries()
    if bin_dir is None:
        raise RuntimeError(MISSING)
    root = Path(tempfile.mkdtemp(prefix="streamchat-pg-"))
    data, sock = root / "data", root / "sock"
    sock.mkdir()
    if os.geteuid() == 0:
        entry = pwd.getpwnam(RUN_AS)
        for path in (root, sock):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    log = root / "postgres.log"
    process = None
    try:
        subprocess.run(_as_user([str(bin_dir / "initdb"), "-D", str(data), "-U", user, "-A", "trust",
                                 "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                _as_user([str(bin_dir / "postgres"), "-D", str(data), "-p", str(port),
                          "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sock}",
                          "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                          "-c", "max_connections=200"]),
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            ready = subprocess.run([str(bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)],
                                   capture_output=True)
            if ready.returncode == 0:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        # Stops by itself: when this test process is gone (killed, crashed), or after MAX_LIFETIME_S.
        subprocess.Popen(["sh", "-c", f"end=$(( $(date +%s) + {MAX_LIFETIME_S} )); "
                          f"while kill -0 {os.getpid()} 2>/dev/null && [ $(date +%s) -lt $end ]; do sleep 1; done; "
                          f"kill -INT -{process.pid} 2>/dev/null"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        subprocess.run([str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", user, database],
                       check=True, capture_output=True, timeout=30)
        yield f"postgresql://{user}@127.0.0.1:{port}/{database}"
    finally:
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # SIGINT: "fast" shutdown, clients cut
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(root, ignore_errors=True)
