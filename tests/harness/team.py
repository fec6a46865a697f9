"""Team mode for tests: app replicas on one PostgreSQL database, and nginx in front of them
with the project's own deploy/nginx.conf (its upstream servers and port rewritten).

    with postgres_server() as db, replicas(2, env | {"STREAMCHAT_DATABASE_URL": db}) as apps:
        apps[0].url, apps[1].url, apps[0].kill()
        with nginx_in_front([a.port for a in apps]) as url: ...
"""
from __future__ import annotations

import contextlib
import re
import urllib.parse
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.harness.browser import CHAT_INPUT, streamlit_process, wait_idle
from tests.harness.processes import ROOT, free_port, kill_process_group, spawn, tail

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
NGINX_MISSING = "nginx not installed (apt-get install nginx)"


@dataclass
class Replica:
    url: str
    port: int
    process: subprocess.Popen

    def kill(self) -> None:
        """As a crash would: SIGKILL to its whole process group, no clean-up of its own."""
        kill_process_group(self.process, timeout=0)


@contextlib.contextmanager
def replicas(n: int, env: dict[str, str]) -> Iterator[list[Replica]]:
    """n `streamlit run app.py` replicas with the same environment (one database)."""
    with contextlib.ExitStack() as stack:
        apps = []
        for port in (free_port() for _ in range(n)):
            url, proc = stack.enter_context(streamlit_process("app.py", env, port))
            apps.append(Replica(url, port, proc))
        yield apps


def conversation_of(page) -> str:
    page.wait_for_function("() => location.search.includes('c=')", timeout=10_000)
    return urllib.parse.parse_qs(urllib.parse.urlsplit(page.url).query)["c"][0]


def open_at(context, url: str, idle: bool = True):
    """A new tab at `url`; with `idle`, once the app is idle (not for a page showing a live reply:
    that is busy until the reply ends)."""
    page = context.new_page()
    page.goto(url, timeout=30_000)
    page.locator(CHAT_INPUT).wait_for(state="visible", timeout=30_000)
    if idle:
        wait_idle(page)
    return page


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def render_nginx_conf(upstream_ports: list[int], listen_port: int, prefix: Path) -> str:
    """deploy/nginx.conf with these replicas and this port, wrapped as a whole nginx.conf."""
    conf = NGINX_CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in upstream_ports)
    conf = re.sub(r"(upstream streamchat \{\n    ip_hash;\n)(?:    #? ?server [^\n]*\n)+", r"\g<1>" + servers, conf)
    conf = re.sub(r"listen \d+;", f"listen 127.0.0.1:{listen_port};", conf)
    return (f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\nhttp {{\n"
            f"access_log off;\nclient_body_temp_path {prefix}/body;\nproxy_temp_path {prefix}/proxy;\n"
            f"{conf}\n}}\n")


@contextlib.contextmanager
def nginx_in_front(upstream_ports: list[int]) -> Iterator[str]:
    """nginx (in the foreground, dies with the test) balancing the replicas; yields its URL."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError(NGINX_MISSING)
    prefix = Path(tempfile.mkdtemp(prefix="streamchat-nginx-"))
    prefix.chmod(0o777)   # its workers run as nobody
    port = free_port()
    (prefix / "nginx.conf").write_text(render_nginx_conf(upstream_ports, port, prefix))
    proc = spawn([binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
                 stdout=open(prefix / "stdout.log", "wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not come up: {tail(prefix / 'error.log')}")
            time.sleep(0.1)
        yield url
    finally:
        kill_process_group(proc)
        shutil.rmtree(prefix, ignore_errors=True)
