"""``appliance central bench --json`` on tiny sizes: the contract's keys, real figures."""

from __future__ import annotations

import json
import subprocess
import sys

KEYS = ("rows", "search_p95_ms", "ingest_calls_per_s", "replication_lag_p99_s",
        "catchup_x_realtime")


def test_the_bench_command_prints_its_five_figures(tmp_path):
    out = subprocess.run([sys.executable, "-m", "appliance", "central", "bench", "--json",
                          "--rows", "3000", "--sites", "3", "--days", "2", "--concurrent", "4",
                          "--lag-seconds", "3", "--outage-hours", "0.01", "--ingest-calls", "40",
                          "--ingest-sites", "1", "--work-dir", tmp_path],
                         capture_output=True, text=True, timeout=280)
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    assert list(doc)[:5] == list(KEYS)
    assert doc["rows"] == 3000
    for k in KEYS[1:]:
        assert isinstance(doc[k], (int, float)) and doc[k] > 0, (k, doc[k])
    assert doc["replication_chunks"] > 0 and doc["catchup_calls"] > 0
    assert not list(tmp_path.iterdir()), "the bench left its cluster folder behind"
