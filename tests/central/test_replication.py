"""Must hold: through a network cut, a PostgreSQL restart and kill -9, every call arrives once.

The busy hour runs at --fast on the simulator (15 simulated minutes, 8
trunks, 64 calls). The network between the site and the centre is a
forwarding proxy process this test owns: it is killed when the first call
starts and started again when the simulated clock is 10 minutes later — a
10-minute outage of the busy hour in the scenario's own time (the recorder
runs about 5× faster than real time here, so the outage lasts about two
real minutes; the outbox neither knows nor cares). As the outage ends, the
recorder is killed with SIGKILL mid-scenario; while the backlog drains, the
centre's PostgreSQL is restarted and the sender is killed with SIGKILL
mid-upload; then both start again. At the end every call of
the site is at the centre once, every file byte-identical (SHA-256), and the
site's ledger chain is at the centre verbatim, entry for entry.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
from datetime import datetime

from tests.central.conftest import stop, wait_for

_START = re.compile(r"録音開始 / recording \S+: \S+ \S+ \S+ (\d\d):(\d\d):(\d\d)")


def _sim_seconds(log_path) -> list[int]:
    out = []
    for m in _START.finditer(log_path.read_text(errors="replace")):
        h, mi, s = map(int, m.groups())
        out.append(h * 3600 + mi * 60 + s)
    return out


def _outbox_count(site) -> int:
    import sqlite3
    with sqlite3.connect(site.root / "outbox.sqlite") as c:
        return c.execute("SELECT COUNT(*) FROM items").fetchone()[0]


def assert_site_at_centre(site, centre, code: str) -> int:
    """Every call once, every file byte-identical, the chain verbatim; returns calls checked."""
    with site.catalog() as c:
        c.row_factory = None
        calls = c.execute("SELECT id, state, sha256, recording_path, key_id FROM calls"
                          ).fetchall()
        cols = ("seq", "at", "kind", "call_ids", "ground", "reference", "actor", "approver",
                "recipient", "detail", "prev_hash", "hash")
        chain = [tuple(r) for r in c.execute(f"SELECT {', '.join(cols)} FROM ledger ORDER BY seq")]
    with centre.db() as db:
        got = {r[0]: r[1:] for r in db.execute(
            "SELECT site_call_id, state, sha256, recording_path, stored_at FROM calls"
            " WHERE site_code = %s", (code,))}
        n_rows = db.execute("SELECT COUNT(*) FROM calls WHERE site_code = %s",
                            (code,)).fetchone()[0]
        theirs = [tuple(r) for r in db.execute(
            f"SELECT {', '.join(cols)} FROM site_ledger WHERE site_code = %s ORDER BY seq",
            (code,))]
    assert n_rows == len(calls) == len(got), "a call is missing at the centre, or twice"
    files = 0
    for cid, state, sha, relpath, key_id in calls:
        c_state, c_sha, c_path, stored = got[cid]
        assert c_state == state, (cid, state, c_state)
        if relpath and state in ("complete", "truncated"):
            site_bytes = (site.root / relpath).read_bytes()
            assert hashlib.sha256(site_bytes).hexdigest() == sha
            centre_bytes = (centre.root / c_path).read_bytes()
            assert centre_bytes == site_bytes, f"{cid}: not byte-identical at the centre"
            assert (centre.root / "keys" / "data" / f"{key_id}.key").read_bytes() == \
                (site.root / "keys" / "data" / f"{key_id}.key").read_bytes()
            files += 1
    assert theirs == chain, "the site's chain is not at the centre verbatim"
    return files


def test_busy_hour_through_a_cut_a_database_restart_and_kill_9(centre, make_site, proxy,
                                                               pg_cluster):
    token = centre.add_site("higashi", "東庁舎")
    site = make_site("higashi", "東庁舎", replication="outbox_alarm_s = 20")
    proxy.start(centre.sites_port)
    site.enrol(proxy.url, token)
    rec = site.run("busy-hour.toml")
    sender = site.replicate(log="replicate-1.log")

    # the network goes when the first call starts and comes back 10 simulated minutes later
    first = wait_for(lambda: _sim_seconds(rec.log_path), 120, "the first call")[0]
    proxy.cut()
    cut_at = datetime.now()
    wait_for(lambda: any(t >= first + 600 for t in _sim_seconds(rec.log_path)) or
             rec.poll() is not None, 600, "ten simulated minutes")
    # ten minutes on, the appliance is killed with SIGKILL mid-scenario (calls in progress)
    stop(rec, signal.SIGKILL)
    assert rec.returncode == -signal.SIGKILL, "the scenario ended before the outage did"
    backlog = _outbox_count(site)
    assert backlog > 100, f"the outage left only {backlog} items queued"
    with site.catalog() as c:      # the outbox alarm was raised while the centre was away
        raised = c.execute("SELECT raised_at FROM alarms WHERE code = 'outbox_stalled'"
                           ).fetchall()
    assert raised, f"no outbox alarm after {(datetime.now() - cut_at).seconds} s of outage"
    proxy.restore()

    # mid-upload: the centre's PostgreSQL restarts
    wait_for(lambda: _outbox_count(site) < backlog * 0.8, 120, "the upload to start")
    pg_cluster.restart()
    # mid-upload: the sender is killed with SIGKILL too, then both start again
    wait_for(lambda: _outbox_count(site) < backlog * 0.5, 180, "the upload to go on")
    left = _outbox_count(site)
    stop(sender, signal.SIGKILL)
    assert left > 0, "the upload had finished before the sender was killed"
    rec2 = site.run("demo.toml", log="run-2.log")      # closes the killed calls as truncated
    assert rec2.wait(300) == 0, rec2.log_path.read_text()[-2000:]
    sender = site.replicate("--until-empty", log="replicate-2.log")
    assert sender.wait(300) == 0, sender.log_path.read_text()[-2000:]

    with site.catalog() as c:
        states = dict(c.execute("SELECT state, COUNT(*) FROM calls GROUP BY state").fetchall())
        alarm_open = c.execute("SELECT COUNT(*) FROM alarms WHERE code = 'outbox_stalled'"
                               " AND cleared_at IS NULL").fetchone()[0]
    assert states.get("truncated", 0) >= 1, states      # the kill cut calls in progress
    assert states.get("complete", 0) >= 40, states
    files = assert_site_at_centre(site, centre, "higashi")
    assert files >= 40
    assert alarm_open == 0, "the outbox alarm stayed up after the backlog drained"
    # the resend after the cut was never needed: the sender asked where the centre was
    with centre.db() as db:
        replays = db.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'refused'"
                             " AND detail LIKE '%%replay%%'").fetchone()[0]
    assert replays == 0
