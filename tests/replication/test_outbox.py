"""The outbox: every sealed byte of every call queued once, in order, rebuilt byte-identical."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path

from appliance.clock import FakeClock
from appliance.config import load_config
from appliance.engine.capture import Engine
from appliance.engine.notice import load_notice
from appliance.engine.recorder import CallRecorder
from appliance.engine.writer import ThreadedSink, Writer
from appliance.replication import Outbox
from appliance.store.datadir import DataDir
from appliance.tapi.sim import SimInterface, load_scenario

ROOT = Path(__file__).resolve().parents[2]


def _record(datadir: Path, outbox: Outbox, scenario: str = "demo.toml") -> list[dict]:
    config = load_config(ROOT / "scenarios" / "appliance.toml")
    dd = DataDir(datadir)
    clock = FakeClock(datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc))
    catalog = dd.open_catalog(clock.now())
    sim = SimInterface(load_scenario(ROOT / "scenarios" / scenario), clock)
    sink = ThreadedSink(Writer(dd, catalog, outbox=outbox), wait_when_full=True)
    recorder = CallRecorder(dd, catalog, config.site.name, config.encoder, sink)
    engine = Engine(sim, recorder, config, load_notice(config.notice), lambda r: None)
    engine.run()
    engine.finish()
    assert sink.close(timeout=120)
    rows = catalog.calls()
    catalog.close()
    return rows


def _rebuild(outbox: Outbox, dd: DataDir, rows: list[dict]) -> dict[str, bytes]:
    by_id = {r["id"]: r for r in rows}
    files: dict[str, bytearray] = {}
    next_chunk: dict[str, int] = {}
    for item in outbox.pending(limit=100_000):
        if item.kind != "chunk":
            continue
        assert item.chunk == next_chunk.get(item.call_id, 0), "chunks out of order or twice"
        next_chunk[item.call_id] = item.chunk + 1
        buf = files.setdefault(item.call_id, bytearray())
        assert item.offset == len(buf), "a hole or an overlap"
        src = dd.path_of(by_id[item.call_id]["recording_path"]).read_bytes()
        buf += src[item.offset:item.offset + item.length]
    return {k: bytes(v) for k, v in files.items()}


def test_every_byte_of_every_call_is_queued_once_in_order(datadir):
    dd = DataDir(datadir)
    with Outbox.open(datadir, lambda: datetime.now(timezone.utc)) as outbox:
        rows = _record(datadir, outbox)
        recorded = [r for r in rows if r["recording_path"]]
        assert recorded
        rebuilt = _rebuild(outbox, dd, rows)
        for r in recorded:
            assert hashlib.sha256(rebuilt[r["id"]]).hexdigest() == r["sha256"]
        kinds = [i.kind for i in outbox.pending(limit=100_000)]
        assert kinds.count("key") == len(recorded)
        # the key and the row are queued before the call's first chunk
        first = {}
        for i in outbox.pending(limit=100_000):
            first.setdefault((i.call_id, i.kind), i.seq)
        for r in recorded:
            assert first[(r["id"], "key")] < first[(r["id"], "chunk")]


def test_reconcile_restores_what_a_power_cut_lost_and_adds_nothing_twice(datadir):
    dd = DataDir(datadir)
    with Outbox.open(datadir, lambda: datetime.now(timezone.utc)) as outbox:
        rows = _record(datadir, outbox)
        call = next(r for r in rows if r["recording_path"])
        # a power cut lost the last commits: the call's last half of chunk notes
        chunks = [i for i in outbox.pending(limit=100_000)
                  if i.kind == "chunk" and i.call_id == call["id"]]
        cut = chunks[len(chunks) // 2]
        outbox.conn.execute("DELETE FROM items WHERE call_id = ? AND kind = 'chunk' AND chunk >= ?",
                            (call["id"], cut.chunk))
        outbox.conn.execute("UPDATE files SET chunks = ?, bytes = ? WHERE call_id = ?",
                            (cut.chunk, cut.offset, call["id"]))
        catalog = dd.open_catalog(datetime.now(timezone.utc))
        with catalog:
            assert outbox.reconcile(catalog, dd.path_of) > 0
            before = outbox.count()
            assert outbox.reconcile(catalog, dd.path_of) == 0     # idempotent
            assert outbox.count() == before
        rebuilt = _rebuild(outbox, dd, rows)
        assert hashlib.sha256(rebuilt[call["id"]]).hexdigest() == call["sha256"]


def test_ledger_entries_are_pulled_in_chain_order_once(datadir):
    dd = DataDir(datadir)
    with Outbox.open(datadir, lambda: datetime.now(timezone.utc)) as outbox:
        _record(datadir, outbox)
        with dd.open_catalog(datetime.now(timezone.utc)) as catalog:
            n = outbox.pull_ledger(catalog)
            assert n == catalog.conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
            assert outbox.pull_ledger(catalog) == 0
        seqs = [i.ledger_seq for i in outbox.pending(limit=100_000) if i.kind == "ledger"]
        assert seqs == list(range(1, n + 1))
        last = outbox.pending(limit=100_000)[-1].seq
        outbox.ack(last)
        assert outbox.count() == 0 and outbox.oldest_queued_at() is None
