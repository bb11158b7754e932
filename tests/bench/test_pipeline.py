"""``appliance bench pipeline`` runs with tiny parameters and keeps its JSON contract.

Not a timed test: the figures are not checked, only that the benchmark runs
end to end and reports every key the issue names.
"""

from __future__ import annotations

import json

KEYS = {"calls_per_core", "ceiling_calls_per_core", "ffmpeg_calls_per_core",
        "notice_latency_p99_ms", "durable_latency_p99_ms", "rss_mb_at_96"}


def test_pipeline_bench_runs_and_reports_the_contract_keys(run_cli, tmp_path):
    code, out, err = run_cli("bench", "pipeline", "--json", "--calls", "1,2", "--seconds", "0.4",
                             "--paced-seconds", "5", "--late-calls", "1",
                             "--ceiling-seconds", "2", "--repeats", "2")
    assert code == 0, err
    r = json.loads(out)
    assert KEYS <= r.keys()
    assert [x["calls"] for x in r["runs"]] == [1, 2]
    # the best of the windows counts, and every window is reported
    for x in r["runs"]:
        assert len(x["windows_us_per_call_frame"]) == 2
        assert x["us_per_call_frame"] == min(x["windows_us_per_call_frame"])
    assert r["calls_per_core"] > 0 and r["ceiling_calls_per_core"] > 0
    assert r["notice_samples"] >= 1 and r["durable_frames"] > 0
    assert r["lost_frames"] == 0


def test_pipeline_bench_refuses_bad_parameters(run_cli):
    code, _, err = run_cli("bench", "pipeline", "--calls", "0")
    assert code != 0 and "--calls" in err
    code, _, err = run_cli("bench", "pipeline", "--repeats", "9")
    assert code != 0 and "--repeats" in err
