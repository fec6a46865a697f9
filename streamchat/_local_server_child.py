"""Child process entry point for the embedded llama.cpp server (see local_server.py).

Usage: python -m streamchat._local_server_child --model PATH --parent-pid PID [...]
The API key arrives as the first line on stdin (argv is visible to every user via ps).
Prints "STREAMCHAT_READY <address>" on stdout once the model is loaded and the HTTP server
listens; llama.cpp's own log goes to stderr. Exits when the parent process dies.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time

READY_PREFIX = "STREAMCHAT_READY "
ERROR_PREFIX = "STREAMCHAT_ERROR "
EXIT_LOAD_FAILED = 3
_PR_SET_DEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the getppid() watchdog still applies
        pass
    # The parent may have died before prctl took effect.
    if os.getppid() != parent_pid:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--alias", required=True)
    ap.add_argument("--parent-pid", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--ctx-size", type=int, default=8192)
    args = ap.parse_args(argv)

    _die_with_parent(args.parent_pid)
    api_key = sys.stdin.readline().strip()
    if not api_key:  # never serve without a key
        print(ERROR_PREFIX + "no API key on stdin", flush=True)
        return 2

    import xllamacpp as xlc

    p = xlc.CommonParams()
    p.model.path = args.model
    p.model_alias = {args.alias}
    p.hostnames = ["127.0.0.1"]
    p.port = 0  # llama.cpp binds a free port itself: no race between picking and binding
    p.api_keys = [api_key]
    p.n_parallel = args.parallel
    p.n_ctx = args.ctx_size  # split evenly across slots
    p.cpuparams.n_threads = args.threads
    p.cpuparams_batch.n_threads = args.threads
    p.endpoint_slots = True
    try:
        server = xlc.Server(p)  # blocks until the model is loaded and the server listens
    except Exception as e:  # llama.cpp logs the real reason to stderr just before this
        print(ERROR_PREFIX + str(e), flush=True)
        time.sleep(0.2)  # llama.cpp logs from a worker thread: let it write the reason
        return EXIT_LOAD_FAILED
    print(READY_PREFIX + server.listening_address, flush=True)

    # Watchdog: PR_SET_DEATHSIG is the fast path; this catches everything else.
    while os.getppid() == args.parent_pid:
        time.sleep(0.5)
    os._exit(0)  # skip the server's destructor: nothing to flush, and it can block


if __name__ == "__main__":
    sys.exit(main())
