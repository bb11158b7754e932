"""``appliance dsp dtmf|tones`` and ``appliance bench dsp``: the JSON contract and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from appliance.cli.wavio import write_line_wav
from appliance.dsp import gen


@pytest.fixture
def dialled(tmp_path):
    x = np.concatenate((gen.silence(300), gen.dtmf("0263345000", level=-12, twist=2, on=60, off=40),
                        gen.silence(300)))
    p = tmp_path / "dial.wav"
    write_line_wav(p, x)
    return p


@pytest.fixture
def progress(tmp_path):
    x = np.concatenate((gen.call_progress("dial", 2.0), gen.silence(1000),
                        gen.call_progress("ringback", 7.0), gen.silence(2500),
                        gen.call_progress("busy", 3.0), gen.silence(1000)))
    p = tmp_path / "progress.wav"
    write_line_wav(p, x)
    return p


def test_dtmf_json(run_cli, dialled):
    code, out, err = run_cli("dsp", "dtmf", dialled, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["digits"] == "0263345000"
    assert [e["digit"] for e in doc["events"]] == list("0263345000")
    assert set(doc["events"][0]) == {"digit", "start_s", "end_s"}
    assert doc["events"][0]["start_s"] == pytest.approx(0.3, abs=0.03)
    assert doc["events"][0]["end_s"] == pytest.approx(0.36, abs=0.03)


def test_dtmf_human_is_japanese_first(run_cli, dialled):
    code, out, _ = run_cli("dsp", "dtmf", dialled)
    assert code == 0
    assert out.startswith("ダイヤル番号 / digits: 0263345000")


def test_tones_json(run_cli, progress):
    code, out, err = run_cli("dsp", "tones", progress, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [d["tone"] for d in doc] == ["dial", "ringback", "busy"]
    assert all(set(d) == {"tone", "start_s", "end_s"} for d in doc)
    assert doc[0]["start_s"] == pytest.approx(0.0, abs=0.05)
    assert doc[1]["start_s"] == pytest.approx(3.0, abs=0.05)
    assert doc[2]["end_s"] == pytest.approx(15.0, abs=0.05)


def test_tones_human_names(run_cli, progress):
    code, out, _ = run_cli("dsp", "tones", progress)
    assert code == 0
    assert "発信音 / dial" in out and "呼出音 / ringback" in out and "話中音 / busy" in out


def test_nothing_found(run_cli, tmp_path):
    p = tmp_path / "quiet.wav"
    write_line_wav(p, np.zeros(8000, np.int16))
    assert json.loads(run_cli("dsp", "dtmf", p, "--json")[1]) == {"digits": "", "events": []}
    assert json.loads(run_cli("dsp", "tones", p, "--json")[1]) == []
    assert "見つかりません" in run_cli("dsp", "dtmf", p)[1]


@pytest.mark.parametrize("command", ["dtmf", "tones"])
def test_bad_input_is_a_clear_error_without_traceback(run_subprocess, tmp_path, command):
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    wrong_rate = tmp_path / "cd.wav"
    write_line_wav(wrong_rate, np.zeros(100, np.int16), rate=44100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    for path in (tmp_path / "missing.wav", text, wrong_rate, empty, tmp_path):
        r = run_subprocess("dsp", command, path)
        assert r.returncode != 0, path
        assert "Traceback" not in r.stderr
        assert "エラー / error" in r.stderr and str(path) in r.stderr


def test_bench_dsp_lists_each_detector_with_a_baseline(run_cli):
    code, out, err = run_cli("bench", "dsp", "--frames", "20", "--json")
    assert code == 0, err
    doc = json.loads(out)
    names = [d["name"] for d in doc["detectors"]]
    assert {"dtmf", "tones", "level"} <= set(names)
    assert doc["baseline_rms_us"] > 0
    for d in doc["detectors"]:
        assert d["us_per_frame"] > 0
        assert d["x_rms"] == pytest.approx(d["us_per_frame"] / doc["baseline_rms_us"])
    code, out, _ = run_cli("bench", "dsp", "--frames", "20")
    assert code == 0 and "µs" in out and "dtmf" in out
    assert run_cli("bench", "dsp", "--frames", "1")[0] != 0
