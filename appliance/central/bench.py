"""``appliance central bench``: the centre measured on a throwaway PostgreSQL, all on this machine.

Four figures, each through the product's own code path:

- ``search_p95_ms`` — ``rows`` call rows (``sites`` × ``days``, default
  50 × 90 = 10 million) generated in PostgreSQL; then searches by number
  and period through :meth:`PgCatalog.calls` (the code the staff service
  and ``request open`` use), p95 of ``SEARCHES`` searches for numbers that
  exist, over periods of 1 to 31 days.
- ``ingest_calls_per_s`` — call *records* (row, sealed data key, ledger
  entry: the index of a call) of ``INGEST_SITES`` enrolled sites, each sent
  by its own ``appliance replicate`` process over mutual TLS to ``appliance
  central serve``, until every outbox is empty. Audio is measured by the
  catch-up (``ingest_audio_mb_per_s``).
- ``replication_lag_p99_s`` — one site with ``concurrent`` calls at a time
  for ``lag_seconds`` of real time: a producer process drives the real
  writer (outbox hook, fdatasync per chunk) with sealed-size chunks every
  0.8 s per call (16 kbit/s per leg, the default encoder), while the
  sender runs in this process; lag = from a chunk's entry in the outbox to
  the centre's acknowledgement, p99.
- ``catchup_x_realtime`` — the backlog a site piles up during an outage of
  ``outage_hours`` at the busy hour's rate all the time (8 trunks, calls of
  about 70 s back to back: pessimistic, a real day is quieter), drained by
  ``appliance replicate``; the ratio is the outage's length over the drain
  time. The backlog and its drain grow linearly with the outage, so an hour
  measures the ratio of a 24-hour outage within the bench's 10 minutes.

The throwaway cluster runs with fsync off while rows are generated (a
bench-only setting; it does not change search times) and on for the rest.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

SEARCHES = 300
INGEST_SITES = 4
CHUNK_BYTES = 3200            # 0.8 s of two 16 kbit/s legs, sealed
CHUNK_INTERVAL_S = 0.8
BUSY_TRUNKS = 8
BUSY_CALL_S = 70.0

_INDEXES = (
    "CREATE INDEX calls_started ON calls (started_at)",
    "CREATE INDEX calls_far ON calls (far_number, started_at)",
    "CREATE INDEX calls_near ON calls (near_number, started_at)",
    "CREATE INDEX calls_called ON calls (called_number, started_at)",
)

_GENERATE = """
    INSERT INTO calls (id, site, trunk, channel, direction, started_at, duration_s,
        far_number, near_number, called_number, notice, state, site_code, site_call_id)
    SELECT 's' || s || '_c' || g, '拠点' || s, 'T1', 1,
        CASE WHEN g % 3 = 0 THEN 'out' ELSE 'in' END,
        to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"+00:00"'),
        70.0, n, '0263340' || (g % 1000), CASE WHEN g % 3 = 0 THEN n END, 'played',
        'complete', 's' || s, 'c' || g
    FROM (SELECT g, 1 + g % {sites} AS s,
                 '0' || ((g::bigint * 7919) % {numbers} + 100000000) AS n,
                 timestamptz '2026-01-05 00:00:00+09'
                   + (g::double precision / {rows}) * interval '{days} days' AS t
          FROM generate_series({lo}, {hi}) g) x"""


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * (len(s) - 1)))))]


# --- search over many rows ---------------------------------------------------------------------
def bench_search(conninfo: str, rows: int, sites: int, days: int, progress: bool) -> dict:
    import psycopg

    from appliance.central.pgcatalog import PgCatalog
    numbers = max(100, rows // 20)       # each caller ~20 calls over the period
    t0 = time.monotonic()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # generated without its indexes and keys, which are then built once, sorted
        for ix in (*_INDEXES, "CREATE INDEX calls_site_started"):
            conn.execute(f"DROP INDEX IF EXISTS {ix.split()[2]}")
        conn.execute("ALTER TABLE holds DROP CONSTRAINT IF EXISTS holds_call_id_fkey")
        conn.execute("ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_pkey")
        conn.execute("ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_site_code_fkey")
        conn.execute("ALTER TABLE calls DROP CONSTRAINT IF EXISTS calls_site_code_site_call_id_key")
        conn.execute("INSERT INTO sites (code, name, created_at) SELECT 's' || g, '拠点' || g,"
                     " '2026-01-01T00:00:00.000+00:00' FROM generate_series(1, %s) g", (sites,))
        step = 500_000
        todo = [(lo, min(rows, lo + step - 1)) for lo in range(1, rows + 1, step)]
        lock = threading.Lock()

        def worker() -> None:
            # two server processes generate at once: one per core
            with psycopg.connect(conninfo, autocommit=True) as wconn:
                while True:
                    with lock:
                        if not todo:
                            return
                        lo, hi = todo.pop(0)
                    wconn.execute(_GENERATE.format(lo=lo, hi=hi, rows=rows, sites=sites,
                                                   days=days, numbers=numbers))
                    _say(progress, f"  rows {lo:,}–{hi:,} of {rows:,} "
                                   f"({time.monotonic() - t0:.0f} s)")
        workers = [threading.Thread(target=worker) for _ in range(2)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        # the indexes a search by number and period uses (the keys take no part in it)
        for ix in _INDEXES:
            conn.execute(ix)
        conn.execute("ANALYZE calls")
        _say(progress, f"  indexed ({time.monotonic() - t0:.0f} s)")
        load_s = time.monotonic() - t0
        cat = PgCatalog(conn)
        rng = random.Random(7)
        start = datetime(2026, 1, 5, tzinfo=timezone(timedelta(hours=9)))
        times, found = [], 0
        for _ in range(SEARCHES):
            g = rng.randrange(1, rows + 1)
            number = "0" + str((g * 7919) % numbers + 100000000)
            span = rng.randint(1, 31)
            since = start + timedelta(days=rng.uniform(0, max(0, days - span)))
            t = time.perf_counter()
            found += len(cat.calls(number=number, since=since, until=since + timedelta(days=span)))
            times.append((time.perf_counter() - t) * 1000)
    return {"rows": rows, "search_p95_ms": round(_pct(times, 0.95), 2),
            "search_median_ms": round(statistics.median(times), 2),
            "search_mean_found": round(found / SEARCHES, 2), "load_s": round(load_s, 1)}


# --- sites, the centre, enrolment ------------------------------------------------------------
class Rig:
    """A centre process and enrolled site data directories under ``root``."""

    def __init__(self, root: Path, conninfo: str) -> None:
        self.root = root
        self.conninfo = conninfo
        self.pw = root / "pw"
        self.pw.write_text("bench-pass-123\n")
        self.ports = (_free_port(), _free_port())
        self.config = root / "central.toml"
        self.config.write_text(f'[central]\ndatabase = "{conninfo}"\n'
                               f'sites_listen = "127.0.0.1:{self.ports[0]}"\n'
                               f'web_listen = "127.0.0.1:{self.ports[1]}"\n'
                               'public_host = "127.0.0.1"\npool_size = 12\n', encoding="utf-8")
        self.centre_dir = root / "centre"
        self.proc: subprocess.Popen | None = None
        self._cli("--data-dir", self.centre_dir, "--config", self.config, "central", "init",
                  "--manager", "bench", "--password-file", self.pw, "--recovery-key-file",
                  root / "rk")

    @staticmethod
    def _cli(*args) -> str:
        out = subprocess.run([sys.executable, "-m", "appliance", *map(str, args)],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"{args[4:6]}: {out.stderr[-800:]}")
        return out.stdout

    def start(self) -> None:
        log = open(self.root / "centre.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "appliance", "--data-dir", str(self.centre_dir), "--config",
             str(self.config), "central", "serve", "--http"], stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 60
        import socket
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.ports[0]), 0.5):
                return
            if self.proc.poll() is not None:
                raise RuntimeError("the centre did not start")
            time.sleep(0.1)
        raise RuntimeError("the centre did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def site(self, code: str) -> Path:
        import json
        d = self.root / code
        cfg = self.root / f"{code}.toml"
        cfg.write_text(f'[site]\nname = "{code}"\n[replication]\npoll_s = 0.05\n'
                       'backoff_min_s = 0.1\nbackoff_max_s = 2.0\n', encoding="utf-8")
        self._cli("--data-dir", d, "--config", cfg, "init", "--manager", "kacho",
                  "--password-file", self.pw, "--recovery-key-file", self.root / f"{code}.rk")
        token = json.loads(self._cli("--data-dir", self.centre_dir, "--config", self.config,
                                     "central", "site", "add", code, "--name", code, "--json",
                                     "--user", "bench", "--password-file", self.pw))["token"]
        self._cli("--data-dir", d, "--config", cfg, "enrol",
                  f"https://127.0.0.1:{self.ports[0]}", "--token", token, "--user", "kacho",
                  "--password-file", self.pw)
        return d

    def replicate(self, site: Path) -> subprocess.Popen:
        cfg = self.root / f"{site.name}.toml"
        return subprocess.Popen([sys.executable, "-m", "appliance", "--data-dir", str(site),
                                 "--config", str(cfg), "replicate", "--until-empty"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _NoSyncFile:
    """A recording file without fdatasync: only for generating a backlog fast."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(path, "xb")
        self.size = 0

    def append(self, data: bytes) -> None:
        self._f.write(data)
        self.size += len(data)

    def close(self) -> str:
        import hashlib
        self._f.close()
        return hashlib.sha256(Path(self._f.name).read_bytes()).hexdigest()


def _writer(site: Path, sync: bool):
    from appliance.engine.writer import Writer
    from appliance.replication import Outbox
    from appliance.store.datadir import DataDir
    from appliance.store.recording import RecordingFile
    dd = DataDir(site)
    now = lambda: datetime.now(timezone.utc)   # noqa: E731
    cat = dd.open_catalog(now())
    outbox = Outbox.open(site, now)
    return dd, cat, outbox, Writer(dd, cat, RecordingFile if sync else _NoSyncFile, outbox)


def _open_job(dd, call_id: str, started: datetime):
    from nacl.public import SealedBox

    from appliance.engine.writer import OpenJob
    from appliance.store.catalog import to_utc_text
    key_id = secrets.token_hex(12)
    row = {"id": call_id, "site": dd.root.name, "trunk": "T1", "channel": 1, "direction": "in",
           "started_at": to_utc_text(started), "notice": "played", "state": "recording",
           "recording_path": dd.recording_relpath(call_id, started), "key_id": key_id,
           "offered_at": to_utc_text(started), "far_number": "0263345000"}
    sealed = SealedBox(dd.keys.public_key()).encrypt(secrets.token_bytes(32))
    return OpenJob(call_id, row, key_id, sealed, row["recording_path"])


def produce_live(site: str, concurrent: int, seconds: float) -> None:
    """Child process: ``concurrent`` calls at real-time pace through the real writer."""
    from appliance.engine.writer import AppendJob, FinishJob
    dd, cat, outbox, writer = _writer(Path(site), sync=True)
    rng = random.Random(1)
    t0 = time.monotonic()
    calls: dict[str, tuple[float, int]] = {}
    n = 0
    tick = 0
    while time.monotonic() - t0 < seconds:
        now = datetime.now(timezone.utc)
        while len(calls) < concurrent:
            cid = f"L{n:06d}"
            n += 1
            writer.execute(_open_job(dd, cid, now))
            calls[cid] = (time.monotonic() + rng.uniform(20, 120), rng.randrange(8))
        for cid, (ends, phase) in list(calls.items()):
            if tick % 8 != phase:       # each call's chunk every 0.8 s, spread over the ticks
                continue
            data = os.urandom(CHUNK_BYTES)
            if time.monotonic() >= ends:
                writer.execute(FinishJob(cid, data, {"state": "complete"}, now, 60.0))
                del calls[cid]
            else:
                writer.execute(AppendJob(cid, data))
        tick += 1
        time.sleep(max(0.0, t0 + tick * CHUNK_INTERVAL_S / 8 - time.monotonic()))
    for cid in list(calls):
        writer.execute(FinishJob(cid, b"", {"state": "complete"}, datetime.now(timezone.utc),
                                 60.0))
    outbox.close()
    cat.close()


def make_backlog(site: Path, hours: float) -> tuple[int, int]:
    """The outbox of ``hours`` at the busy hour's rate; (calls, bytes)."""
    from appliance.engine.writer import AppendJob, FinishJob
    dd, cat, outbox, writer = _writer(site, sync=False)
    calls = int(hours * 3600 / BUSY_CALL_S * BUSY_TRUNKS)
    chunks = int(BUSY_CALL_S / CHUNK_INTERVAL_S)
    start = datetime.now(timezone.utc) - timedelta(hours=hours)
    total = 0
    for i in range(calls):
        at = start + timedelta(seconds=i * BUSY_CALL_S / BUSY_TRUNKS)
        cid = f"B{i:06d}"
        writer.execute(_open_job(dd, cid, at))
        for _ in range(chunks - 1):
            writer.execute(AppendJob(cid, os.urandom(CHUNK_BYTES)))
        writer.execute(FinishJob(cid, os.urandom(CHUNK_BYTES), {"state": "complete"},
                                 at + timedelta(seconds=BUSY_CALL_S), BUSY_CALL_S))
        total += chunks * CHUNK_BYTES
    assert writer.stats.failed == 0, writer.stats.errors
    outbox.close()
    cat.close()
    return calls, total


def make_records(site: Path, calls: int) -> None:
    """``calls`` call records without audio (the index part), through the real writer."""
    from appliance.engine.writer import RowJob
    from appliance.store.catalog import to_utc_text
    dd, cat, outbox, writer = _writer(site, sync=False)
    start = datetime.now(timezone.utc) - timedelta(hours=1)
    for i in range(calls):
        at = start + timedelta(seconds=i)
        writer.execute(RowJob({"id": f"R{i:07d}", "site": site.name, "trunk": "T1",
                               "channel": 1, "direction": "in", "started_at": to_utc_text(at),
                               "offered_at": to_utc_text(at), "ended_at": to_utc_text(at),
                               "notice": "none", "state": "unanswered",
                               "far_number": "0263345000"}, at))
    assert writer.stats.failed == 0, writer.stats.errors
    outbox.close()
    cat.close()


def _drain_child(site: str, ready, go, done) -> None:
    """Child process: a sender ready before the clock starts (its start-up is not catch-up)."""
    from appliance.clock import SystemClock
    from appliance.config import load_config
    from appliance.replication import Outbox
    from appliance.replication.link import load_link
    from appliance.replication.sender import ReplicationSettings, Sender
    from appliance.store.datadir import DataDir
    clock = SystemClock()
    dd = DataDir(Path(site))
    settings = ReplicationSettings.from_config(
        load_config(Path(site).parent / f"{Path(site).name}.toml").raw.get("replication"))
    with dd.open_catalog(clock.now()) as cat, Outbox.open(dd.root, clock.now) as ob:
        sender = Sender(dd, load_link(dd.root), ob, cat, clock.now, settings)
        ready.set()
        go.wait(600)
        t = time.monotonic()
        sender.run(until_empty=True)
        done.put(time.monotonic() - t)
        sender.close()


def _drain(rig: Rig, sites: list[Path]) -> float:
    """Seconds from the start signal until every site's outbox is empty."""
    ctx = multiprocessing.get_context("spawn")
    go, done = ctx.Event(), ctx.Queue()
    children = []
    for s in sites:
        ready = ctx.Event()
        p = ctx.Process(target=_drain_child, args=(str(s), ready, go, done))
        p.start()
        children.append((p, ready))
    for p, ready in children:
        if not ready.wait(300):
            raise RuntimeError("a sender did not start")
    t = time.monotonic()
    go.set()
    for p, _ in children:
        p.join(900)
        if p.exitcode != 0:
            raise RuntimeError("a sender failed")
    return time.monotonic() - t


def bench_lag(rig: Rig, concurrent: int, seconds: float, progress: bool) -> dict:
    from appliance.clock import SystemClock
    from appliance.replication import Outbox
    from appliance.replication.link import load_link
    from appliance.replication.sender import ReplicationSettings, Sender
    from appliance.store.datadir import DataDir
    site = rig.site("live")
    ctx = multiprocessing.get_context("spawn")
    producer = ctx.Process(target=produce_live, args=(str(site), concurrent, seconds))
    producer.start()
    clock = SystemClock()
    dd = DataDir(site)
    with dd.open_catalog(clock.now()) as cat, Outbox.open(site, clock.now) as ob:
        sender = Sender(dd, load_link(site), ob, cat, clock.now,
                        ReplicationSettings(poll_s=0.05, backoff_min_s=0.1, backoff_max_s=2.0))
        t = threading.Thread(target=sender.run, name="bench-sender", daemon=True)
        t.start()
        producer.join(seconds + 120)
        deadline = time.monotonic() + 120
        while ob.count() and time.monotonic() < deadline:
            time.sleep(0.2)
        sender.stop.set()
        t.join(30)
        sender.close()
        lags = list(sender.stats.lags)
    _say(progress, f"  lag: {len(lags)} chunks")
    return {"replication_lag_p99_s": round(_pct(lags, 0.99), 3),
            "replication_lag_median_s": round(_pct(lags, 0.5), 3),
            "replication_chunks": len(lags), "concurrent_calls": concurrent}


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_bench(*, rows: int, sites: int, days: int, concurrent: int, lag_seconds: float,
              outage_hours: float, ingest_calls: int, work_dir: Path | None = None,
              progress: bool = True, ingest_sites: int = INGEST_SITES) -> dict:
    from appliance.central.pgcluster import PgCluster
    if not (1 <= sites <= 1000 and 1 <= days <= 3660 and sites * 1 <= rows <= 50_000_000
            and 1 <= concurrent <= 500 and 1 <= lag_seconds <= 3600 and 0 < outage_hours <= 24
            and 1 <= ingest_calls <= 1_000_000 and 1 <= ingest_sites <= 16):
        from appliance.errors import ConfigError
        raise ConfigError("bench: rows 1–50,000,000 (≥ sites), sites 1–1000, days 1–3660, "
                          "concurrent 1–500, lag-seconds 1–3600, outage-hours (0, 24], "
                          "ingest-calls 1–1,000,000")
    base = Path(tempfile.mkdtemp(prefix="acr-bench-", dir=work_dir))
    # a SIGTERM (timeout, systemd) still stops the cluster and removes the folder
    previous = signal.signal(signal.SIGTERM, _interrupt)
    cluster = PgCluster(base / "pg", settings={"fsync": "off", "synchronous_commit": "off",
                                              "maintenance_work_mem": "512MB",
                                              "shared_buffers": "512MB",
                                              "max_wal_size": "4GB"})
    result: dict = {}
    t_all = time.monotonic()
    try:
        conninfo = cluster.start()
        import psycopg

        from appliance.central.schema import migrate
        from appliance.store.catalog import to_utc_text
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("CREATE DATABASE search")
            conn.execute("CREATE DATABASE centre")
        search_db = conninfo.replace("dbname=central", "dbname=search")
        with psycopg.connect(search_db, autocommit=True) as conn:
            migrate(conn, to_utc_text(datetime.now(timezone.utc)))
        _say(progress, f"search: generating {rows:,} rows")
        result.update(bench_search(search_db, rows, sites, days, progress))
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DROP DATABASE search")
        # the rest with fsync on, as in production
        cluster.settings.update({"fsync": "on", "synchronous_commit": "on"})
        cluster.restart()
        rig = Rig(base, conninfo.replace("dbname=central", "dbname=centre"))
        rig.start()
        try:
            per_site = max(1, ingest_calls // ingest_sites)
            _say(progress, f"ingest: {ingest_sites} sites × {per_site} records")
            senders = [rig.site(f"ingest{i}") for i in range(ingest_sites)]
            for s in senders:
                make_records(s, per_site)
            took = _drain(rig, senders)
            result["ingest_calls_per_s"] = round(ingest_sites * per_site / took, 1)
            result["ingest_sites"] = ingest_sites
            _say(progress, f"catch-up: backlog of {outage_hours} h at the busy hour's rate")
            site = rig.site("catchup")
            calls, nbytes = make_backlog(site, outage_hours)
            took = _drain(rig, [site])
            result["catchup_x_realtime"] = round(outage_hours * 3600 / took, 1)
            result["catchup_calls"] = calls
            result["ingest_audio_mb_per_s"] = round(nbytes / took / 1e6, 2)
            result["ingest_calls_with_audio_per_s"] = round(calls / took, 1)
            _say(progress, f"lag: {concurrent} concurrent calls for {lag_seconds:.0f} s")
            result.update(bench_lag(rig, concurrent, lag_seconds, progress))
        finally:
            rig.stop()
    finally:
        cluster.remove()
        shutil.rmtree(base, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
    result["bench_s"] = round(time.monotonic() - t_all, 1)
    keys = ("rows", "search_p95_ms", "ingest_calls_per_s", "replication_lag_p99_s",
            "catchup_x_realtime")
    return {**{k: result.get(k) for k in keys},
            **{k: v for k, v in result.items() if k not in keys}}
