"""``appliance central demo``: the seed's case on this machine, in one command.

The centre on a throwaway local PostgreSQL (appliance.central.pgcluster),
two simulated sites — 東庁舎 recording ``scenarios/demo.toml`` and 大手事務所
``scenarios/quiet-morning.toml`` on simulated time — each enrolled with a
one-time token and replicating over mutual TLS, and the centre's staff
service listing both sites' calls at ``--web-listen`` (loopback, plain HTTP:
a demonstration only). Everything lives under ``--dir`` and every process
the demo starts is stopped by its own pid at the end (or at Ctrl-C with
``--keep-running``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from appliance.central.pgcluster import PgCluster

ROOT = Path(__file__).resolve().parents[2]
SITES = (("higashi", "東庁舎", "demo.toml"), ("ote", "大手事務所", "quiet-morning.toml"))
MANAGER = "demo-jinji"


def _app(*args, check: bool = True) -> str:
    out = subprocess.run([sys.executable, "-m", "appliance", *map(str, args)],
                         capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise RuntimeError(f"appliance {' '.join(map(str, args[4:7]))}: {out.stderr[-600:]}")
    return out.stdout


def _spawn(args, log: Path) -> subprocess.Popen:
    fh = open(log, "ab")
    p = subprocess.Popen([sys.executable, "-m", "appliance", *map(str, args)], stdout=fh,
                         stderr=subprocess.STDOUT)
    fh.close()
    return p


def _stop(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    os.kill(p.pid, signal.SIGTERM)
    try:
        p.wait(30)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("センターが起動しません / the centre did not start (see its log)")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the centre did not start")


def run_demo(args) -> int:
    base = Path(args.dir).resolve()
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    logs = base / "logs"
    logs.mkdir()
    password = base / "demo-password.txt"
    password.write_text("demo-pass-2026\n")
    cluster = PgCluster(base / "pg")
    procs: list[subprocess.Popen] = []
    centre = None
    try:
        print("PostgreSQL を起動 / starting a local PostgreSQL …", flush=True)
        conninfo = cluster.start()
        sites_port = _free_port()
        host, _, web_port = args.web_listen.rpartition(":")
        config = base / "central.toml"
        config.write_text(f'[central]\ndatabase = "{conninfo}"\n'
                          f'sites_listen = "127.0.0.1:{sites_port}"\n'
                          f'web_listen = "{args.web_listen}"\npublic_host = "127.0.0.1"\n',
                          encoding="utf-8")
        cdir = base / "centre"
        c = ["--data-dir", cdir, "--config", config, "central"]
        _app(*c, "init", "--manager", MANAGER, "--password-file", password,
             "--recovery-key-file", base / "demo-recovery-key.txt")
        centre = _spawn([*c, "serve", "--http"], logs / "centre.log")
        _wait_port(sites_port, centre)
        _wait_port(int(web_port), centre)
        print(f"センター / centre: sites on https://127.0.0.1:{sites_port} (mutual TLS)",
              flush=True)
        runs = []
        for code, name, scenario in SITES:
            d = base / code
            cfg = base / f"{code}.toml"
            cfg.write_text(f'[site]\nname = "{name}"\n[replication]\npoll_s = 0.2\n',
                           encoding="utf-8")
            s = ["--data-dir", d, "--config", cfg]
            _app(*s, "init", "--manager", f"{code}-kacho", "--password-file", password,
                 "--recovery-key-file", base / f"{code}-recovery-key.txt")
            token = json.loads(_app(*c, "site", "add", code, "--name", name, "--json", "--user",
                                    MANAGER, "--password-file", password))["token"]
            _app(*s, "enrol", f"https://127.0.0.1:{sites_port}", "--token", token, "--user",
                 f"{code}-kacho", "--password-file", password)
            print(f"{name} ({code}): 登録済み / enrolled; 録音開始 / recording "
                  f"scenarios/{scenario} on simulated time", flush=True)
            procs.append(_spawn([*s, "replicate"], logs / f"{code}-replicate.log"))
            runs.append(_spawn([*s, "run", "--fast", "--interface",
                                f"sim://{ROOT / 'scenarios' / scenario}"], logs / f"{code}-run.log"))
        procs.extend(runs)
        for r in runs:
            if r.wait(900) != 0:
                raise RuntimeError("a site's recorder failed (see var/central-demo/logs)")
        import sqlite3
        for code, _, _ in SITES:          # the senders drain what the recorders queued
            for _ in range(1500):
                with sqlite3.connect(base / code / "outbox.sqlite") as db:
                    if db.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0:
                        break
                time.sleep(0.2)
        print(_app(*c, "calls", "--user", MANAGER, "--password-file", password), flush=True)
        print(f"職員サービス / staff service: http://{host}:{web_port}/calls  (デモ専用 / demo "
              f"only: {MANAGER} / {password.read_text().strip()})", flush=True)
        if args.keep_running:
            print("Ctrl-C で停止 / Ctrl-C stops the demo", flush=True)
            try:
                while centre.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        for p in procs:
            _stop(p)
        _stop(centre)
        cluster.stop()
