"""kill -9 in the middle of a recording: nothing already recorded is lost (R16)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime

from appliance.store.opus import read_recording


def test_kill_9_mid_call_loses_at_most_the_last_second(datadir, staff, tmp_path, run_subprocess):
    proc = subprocess.Popen(
        [sys.executable, "-m", "appliance", "--data-dir", str(datadir), "run",
         "--demo-seconds", "60"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()                       # "recording <id> …": it has begun
        assert "recording" in line, line
        deadline = time.monotonic() + 30
        calls = []
        while time.monotonic() < deadline and not calls:
            res = run_subprocess("--data-dir", datadir, "calls", "--json", *staff)
            calls = [c for c in json.loads(res.stdout) if c["state"] == "recording"]
        assert calls, "the call never showed up as recording"
        # the catalog keeps milliseconds; the JSON shows whole seconds
        conn = sqlite3.connect(datadir / "catalog.sqlite")
        (raw,) = conn.execute("SELECT started_at FROM calls WHERE id = ?",
                              (calls[0]["id"],)).fetchone()
        conn.close()
        started = datetime.fromisoformat(raw)
        time.sleep(3.3)
        os.kill(proc.pid, signal.SIGKILL)
        killed_at = datetime.now(started.tzinfo)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    elapsed = (killed_at - started).total_seconds()

    # the next start closes the interrupted call as truncated
    res = run_subprocess("--data-dir", datadir, "run", "--fast", "--demo-seconds", "1")
    assert res.returncode == 0, res.stderr
    assert "truncated" in res.stdout
    calls = json.loads(run_subprocess("--data-dir", datadir, "calls", "--json", *staff).stdout)
    cut = next(c for c in calls if c["id"] == calls[0]["id"])
    assert cut["state"] == "truncated"
    assert cut["duration_s"] >= elapsed - 1.0

    out = tmp_path / "cut.opus"
    res = run_subprocess("--data-dir", datadir, "extract", cut["id"], "--out", out,
                         "--ground", "duty", "--reference", "crash test", *staff)
    assert res.returncode == 0, res.stderr
    rec = read_recording(out.read_bytes())
    assert rec.truncated
    # all audio up to at most 1 s before the kill
    assert rec.duration_s >= elapsed - 1.0, (rec.duration_s, elapsed)

    # and verify reports it as truncated by a crash, which the recovery recorded in the
    # ledger: reported as such, not a problem (issue 20 item 4)
    res = run_subprocess("--data-dir", datadir, "verify", "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0, report["problems"]
    assert report["problems"] == []
    found = {f["call_id"]: f["status"] for f in report["findings"]}
    assert found[cut["id"]] == "truncated"
