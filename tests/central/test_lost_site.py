"""Must hold: delete an appliance's data directory; every call that ended more than
``replication_lag_s`` (5 s) before plays from the centre.

The demo scenario runs in real time with the sender running beside the
recorder. The moment the recorder finishes, both processes are killed with
SIGKILL and the data directory is removed, as a dead SD card would take it.
Every call the site's catalog showed ended five seconds or more before that
moment is then extracted at the centre with a staff password, decoded, and
its sealed file compared with the SHA-256 the site had recorded.
"""

from __future__ import annotations

import shutil
import signal
from datetime import datetime, timedelta, timezone

from appliance.store.opus import read_recording
from tests.central.conftest import stop

REPLICATION_LAG_S = 5


def test_calls_ended_5_s_before_the_data_dir_is_lost_play_from_the_centre(centre, make_site,
                                                                          tmp_path):
    site = make_site("higashi", "東庁舎")
    site.enrol(centre.url, centre.add_site("higashi", "東庁舎"))
    rec = site.run("demo.toml", fast=False)
    sender = site.replicate()
    assert rec.wait(180) == 0, rec.log_path.read_text()[-2000:]
    with site.catalog() as c:
        rows = c.execute("SELECT id, ended_at, sha256, state FROM calls").fetchall()
    lost_at = datetime.now(timezone.utc)
    stop(sender, signal.SIGKILL)
    shutil.rmtree(site.root)

    due = [r for r in rows if r[1] and datetime.fromisoformat(r[1]) <
           lost_at - timedelta(seconds=REPLICATION_LAG_S)]
    assert len(due) >= 2, rows
    with centre.db() as db:
        stored = {r[0]: r[1:] for r in db.execute(
            "SELECT site_call_id, sha256, recording_path FROM calls WHERE site_code = 'higashi'")}
    for cid, ended, sha, state in due:
        assert cid in stored, f"{cid} ended {ended} and is not at the centre"
        c_sha, c_path = stored[cid]
        assert c_sha == sha and c_path, f"{cid} is not stored complete at the centre"
        out = tmp_path / f"{cid}.opus"
        code, text = centre.staff("extract", f"higashi_{cid}", "--out", out, "--ground", "duty",
                                  "--reference", "庁内確認 R8-001")
        assert code == 0, text
        assert read_recording(out.read_bytes()).duration_s > 1.0


def test_the_sites_own_web_service_works_while_the_centre_is_away(centre, make_site):
    from fastapi.testclient import TestClient

    from appliance.clock import SystemClock
    from appliance.web import WebContext, create_app
    from tests.central.conftest import SITE_MANAGER, SITE_PASSWORD

    site = make_site("higashi", "東庁舎")
    site.enrol(centre.url, centre.add_site("higashi", "東庁舎"))
    centre.stop()                                   # the centre is unreachable from now on
    assert site.run("demo.toml").wait(300) == 0
    ctx = WebContext.load(site.root, site.config, clock=SystemClock(), secure_cookies=False)
    with TestClient(create_app(ctx)) as web:
        token = web.get("/api/session/login-csrf").json()["csrf"]
        r = web.post("/api/session", json={"user": SITE_MANAGER, "password": SITE_PASSWORD},
                     headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text
        web.headers["X-CSRF-Token"] = r.json()["csrf"]
        calls = web.get("/api/calls").json()["calls"]
        assert len(calls) == 3 and {c["site"] for c in calls} == {"東庁舎"}
        r = web.post("/api/holds", json={"call_ids": [calls[0]["id"]], "ground": "law",
                                         "reference": "松総第9号"})
        assert r.status_code == 201, r.text
        assert web.get("/status").status_code == 200
    with site.catalog() as c:                        # and the hold waits in the outbox's chain
        assert c.execute("SELECT COUNT(*) FROM holds").fetchone()[0] == 1
        pins = c.execute("SELECT COUNT(*) FROM ledger WHERE kind IN ('key', 'archive')"
                         " AND detail LIKE '%archive_key_new%'").fetchone()[0]
    assert pins == 1, "the change of archive key at enrolment is not on the ledger"
    # the appliance's own checks accept the enrolment's change of archive key
    code, out = site.cli("verify", "--json")
    assert code == 0, out
    code, out = site.cli("ledger", "verify", "--json")
    assert code == 0, out
