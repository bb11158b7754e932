"""A real PostgreSQL, a real centre process and real appliance processes, on loopback.

- one throwaway PostgreSQL cluster per test session (appliance.central.pgcluster:
  Debian's PostgreSQL 15 as the unprivileged user ``pgtest``, its own socket
  directory, stopped by its pid and removed at the end); one fresh database
  per test;
- the centre (``appliance central serve``) and the appliances' recorder and
  sender (``appliance run``, ``appliance replicate``) in their own
  processes, started and stopped (by their own pids) by these fixtures;
- a forwarding proxy process between a site and the centre where a test cuts
  the network.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from appliance.central.pgcluster import PgCluster
from appliance.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
CENTRE_MANAGER = "jinji-kacho"
CENTRE_PASSWORD = "city-archive-pass-1"
SITE_MANAGER = "kacho"
SITE_PASSWORD = "site-pass-1234"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited {proc.returncode}: {read_log(proc)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


def read_log(proc) -> str:
    path = getattr(proc, "log_path", None)
    return path.read_text(errors="replace")[-3000:] if path and path.exists() else ""


def spawn(args: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    fh = open(log, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "appliance", *map(str, args)], stdout=fh,
                            stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, **(env or {})})
    proc.log_path = log
    fh.close()
    return proc


def stop(proc: subprocess.Popen | None, sig=signal.SIGTERM, timeout: float = 30) -> None:
    """Stop one process we started, by its own pid."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def cli(*args) -> tuple[int, str]:
    """The appliance command in-process; returns (exit code, stdout)."""
    import io
    from contextlib import redirect_stdout
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = cli_main([str(a) for a in args])
    return code, buf.getvalue()


@pytest.fixture(scope="session")
def pg_cluster():
    # not under pytest's numbered temporary folders: another engineer's pytest run may
    # rotate those away while this session's cluster still runs in one
    base = Path(tempfile.mkdtemp(prefix="acr-pg-"))
    cluster = PgCluster(base / "cluster")
    cluster.start()
    yield cluster
    cluster.remove()
    shutil.rmtree(base, ignore_errors=True)
    assert cluster.pid is None


@dataclass
class Centre:
    root: Path
    config: Path
    conninfo: str
    sites_port: int
    web_port: int
    password_file: Path
    logs: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.sites_port}"

    def cli(self, *args) -> tuple[int, str]:
        return cli("--data-dir", self.root, "--config", self.config, "central", *args)

    def staff(self, *args) -> tuple[int, str]:
        return self.cli(*args, "--user", CENTRE_MANAGER, "--password-file", self.password_file)

    def start(self) -> None:
        self.proc = spawn(["--data-dir", self.root, "--config", self.config, "central", "serve",
                           "--http"], self.logs / "centre.log")
        wait_port(self.sites_port, self.proc)
        wait_port(self.web_port, self.proc)

    def stop(self) -> None:
        stop(self.proc)
        self.proc = None

    def db(self):
        return psycopg.connect(self.conninfo, autocommit=True)

    def add_site(self, code: str, name: str) -> str:
        code_, out = self.staff("site", "add", code, "--name", name, "--json")
        assert code_ == 0, out
        return json.loads(out)["token"]


@pytest.fixture
def centre(pg_cluster, tmp_path):
    """An initialised centre with its own database; its server running."""
    dbname = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(pg_cluster.conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dbname}")
    conninfo = f"host={pg_cluster.root} user=app dbname={dbname}"
    root = tmp_path / "centre"
    sites_port, web_port = free_port(), free_port()
    config = tmp_path / "central.toml"
    config.write_text(f"""
[central]
database = "{conninfo}"
sites_listen = "127.0.0.1:{sites_port}"
web_listen = "127.0.0.1:{web_port}"
public_host = "127.0.0.1"
""", encoding="utf-8")
    pw = tmp_path / "centre.pw"
    pw.write_text(CENTRE_PASSWORD + "\n")
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Centre(root, config, conninfo, sites_port, web_port, pw, logs)
    code, out = c.cli("init", "--manager", CENTRE_MANAGER, "--password-file", pw,
                      "--recovery-key-file", tmp_path / "centre-recovery.txt")
    assert code == 0, out
    c.start()
    yield c
    c.stop()
    with psycopg.connect(pg_cluster.conninfo, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")


@dataclass(eq=False)
class Site:
    root: Path
    config: Path
    password_file: Path
    logs: Path
    name: str
    procs: list = field(default_factory=list)

    def cli(self, *args) -> tuple[int, str]:
        return cli("--data-dir", self.root, "--config", self.config, *args)

    def staff(self, *args) -> tuple[int, str]:
        return self.cli(*args, "--user", SITE_MANAGER, "--password-file", self.password_file)

    def enrol(self, url: str, token: str) -> dict:
        code, out = self.staff("enrol", url, "--token", token, "--json")
        assert code == 0, out
        return json.loads(out)

    def run(self, scenario: str, *, fast: bool = True, log: str = "run.log") -> subprocess.Popen:
        args = ["--data-dir", self.root, "--config", self.config, "run",
                "--interface", f"sim://{SCENARIOS / scenario}"]
        p = spawn(args + (["--fast"] if fast else []), self.logs / log)
        self.procs.append(p)
        return p

    def replicate(self, *extra, log: str = "replicate.log") -> subprocess.Popen:
        p = spawn(["--data-dir", self.root, "--config", self.config, "replicate", *extra],
                  self.logs / log)
        self.procs.append(p)
        return p

    def catalog(self):
        import sqlite3
        return sqlite3.connect(self.root / "catalog.sqlite")

    def close(self) -> None:
        for p in self.procs:
            stop(p)


@pytest.fixture
def make_site(tmp_path):
    sites: list[Site] = []

    def make(code: str, name: str, *, replication: str = "") -> Site:
        root = tmp_path / code
        pw = tmp_path / f"{code}.pw"
        pw.write_text(SITE_PASSWORD + "\n")
        config = tmp_path / f"{code}.toml"
        config.write_text(f"""
[site]
name = "{name}"
[encoder]
bitrate_per_leg = 16000
complexity = 5
[replication]
poll_s = 0.1
backoff_min_s = 0.1
backoff_max_s = 1.0
timeout_s = 10
{replication}
""", encoding="utf-8")
        logs = tmp_path / f"logs-{code}"
        logs.mkdir()
        site = Site(root, config, pw, logs, name)
        code_, out = cli("--data-dir", root, "--config", config, "init", "--manager",
                         SITE_MANAGER, "--password-file", pw, "--recovery-key-file",
                         tmp_path / f"{code}-recovery.txt")
        assert code_ == 0, out
        sites.append(site)
        return site
    yield make
    for s in sites:
        s.close()


@pytest.fixture
def proxy():
    """Start/stop a forwarding proxy process on a fixed port (a cut = stopping it)."""
    here = Path(__file__).parent / "tcpproxy.py"
    state = {"proc": None}

    class Proxy:
        port = free_port()

        def start(self, target: int) -> None:
            self.target = target
            p = subprocess.Popen([sys.executable, str(here), str(self.port), str(target)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            assert p.stdout.readline().strip() == b"ready"
            state["proc"] = p

        def cut(self) -> None:
            stop(state["proc"], signal.SIGKILL)
            state["proc"] = None

        def restore(self) -> None:
            self.start(self.target)

        @property
        def url(self) -> str:
            return f"https://127.0.0.1:{self.port}"
    yield Proxy()
    stop(state["proc"], signal.SIGKILL)


def wait_for(predicate, timeout: float, what: str, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
