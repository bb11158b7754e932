"""A throwaway PostgreSQL cluster of our own: for tests, the benchmark and the demo.

Production runs the city's PostgreSQL service and gives its connection
string in ``[central] database``; everything that only needs *a* real
PostgreSQL (tests, ``appliance central bench``, ``appliance central demo``)
starts one here: Debian's PostgreSQL 15 binaries, ``initdb`` and ``pg_ctl``
as an unprivileged system user (PostgreSQL refuses to run as root; the user
is created when missing), a socket directory of its own and no TCP port,
stopped by the postmaster's own process id and removed afterwards.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from appliance.errors import ApplianceError

PG_BIN = Path(os.environ.get("ACR_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "pgtest"
DB_USER = "app"
DB_NAME = "central"


class ClusterError(ApplianceError, RuntimeError):
    """The PostgreSQL cluster cannot be created, started or stopped."""


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                    name], check=True, capture_output=True, timeout=30)
    return pwd.getpwnam(name)


class PgCluster:
    """``initdb`` + ``pg_ctl start`` in ``root``; ``stop()`` ends it by its pid; a context manager."""

    def __init__(self, root: Path, *, settings: dict[str, str] | None = None) -> None:
        self.root = Path(root).resolve()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.settings = {"fsync": "on", "max_connections": "60", **(settings or {})}
        self._as_root = os.geteuid() == 0
        self._pid: int | None = None

    # --- running commands as the cluster's owner ------------------------------------
    def _cmd(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", PG_USER, "--", *argv] if self._as_root else argv

    def _run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self._cmd(argv), capture_output=True, text=True,
                                  timeout=timeout, check=True, cwd="/")
        except subprocess.CalledProcessError as exc:
            raise ClusterError(f"{Path(argv[0]).name} failed: {(exc.stderr or exc.stdout)[-800:]}"
                               ) from None
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ClusterError(f"{Path(argv[0]).name}: {exc}") from None

    @property
    def conninfo(self) -> str:
        return f"host={self.root} user={DB_USER} dbname={DB_NAME}"

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, from its own pid file."""
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        if not (PG_BIN / "initdb").exists():
            raise ClusterError(f"{PG_BIN}/initdb がありません / PostgreSQL 15 is not installed "
                               "(Debian package postgresql; tools/bootstrap.sh installs it)")
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            owner = _ensure_user(PG_USER)
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            # the owner must be able to reach its directory: add the traverse bit (not
            # the read bit) to parents that lack it, e.g. pytest's 0700 temporary folders
            for parent in self.root.parents:
                mode = parent.stat().st_mode
                if not mode & 0o001:
                    os.chmod(parent, (mode & 0o7777) | 0o001)
        os.chmod(self.root, 0o700)
        self._run([str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", DB_USER,
                   "--no-sync", "-E", "UTF8", "--locale=C.UTF-8"])

    def start(self) -> str:
        """Initialise when needed, start, create the database; returns the connection string."""
        self.init()
        opts = f"-k {self.root} -c listen_addresses=''" + "".join(
            f" -c {k}={v}" for k, v in self.settings.items())
        self._run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l",
                   str(self.log), "-w", "-t", "60", "start"])
        self._pid = self.pid
        exists = self._run([str(PG_BIN / "psql"), "-h", str(self.root), "-U", DB_USER, "-d",
                            "postgres", "-tAc",
                            f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"]).stdout
        if exists.strip() != "1":
            self._run([str(PG_BIN / "createdb"), "-h", str(self.root), "-U", DB_USER, DB_NAME])
        return self.conninfo

    def stop(self, mode: str = "fast") -> None:
        """Stop the postmaster by its pid; waits until that process is gone."""
        pid = self.pid or self._pid
        if pid is None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
        self._pid = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PgCluster":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as gone once reaped by its parent (pg_ctl is not its parent)
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
