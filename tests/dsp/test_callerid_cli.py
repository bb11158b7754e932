"""``appliance dsp caller-id``: the technician's view of caller ID on a WAV file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from appliance.cli import main
from appliance.cli.wavio import write_line_wav
from appliance.dsp.callerid import encode_caller_id, jclip_frame, modulate_frame


# the installed console script's entry point, run as a fresh process
ENTRY = "import sys; from appliance.cli import main; sys.exit(main(sys.argv[1:]))"


def wav(tmp_path, *parts, name="line.wav"):
    x = np.concatenate([np.zeros(1600), *parts, np.zeros(1600)])
    path = tmp_path / name
    write_line_wav(path, x)
    return path


def run_json(capsys, *argv):
    assert main(["dsp", "caller-id", *map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_lists_every_message_with_the_contract_keys(tmp_path, capsys):
    path = wav(tmp_path, encode_caller_id("jclip", "0263345000", called_number="0263345001"),
               np.zeros(4000), encode_caller_id("bellcore", absent_code="P"))
    got = run_json(capsys, path)
    assert [{k: m[k] for k in ("standard", "number", "absent_reason", "called_number",
                               "checksum_ok")} for m in got] == [
        {"standard": "jclip", "number": "0263345000", "absent_reason": None,
         "called_number": "0263345001", "checksum_ok": True},
        {"standard": "bellcore", "number": None, "absent_reason": "withheld",
         "called_number": None, "checksum_ok": True}]
    assert 0.2 < got[0]["start_s"] < got[1]["start_s"]


def test_standard_option_restricts_the_search(tmp_path, capsys):
    path = wav(tmp_path, encode_caller_id("etsi", "0612345678"))
    assert run_json(capsys, path, "--standard", "jclip") == []
    assert [m["number"] for m in run_json(capsys, path, "--standard", "etsi")] == ["0612345678"]


def test_failed_checksum_is_shown_as_such(tmp_path, capsys):
    frame = bytearray(jclip_frame("0263345000"))
    frame[12] ^= 0x02
    path = wav(tmp_path, modulate_frame("jclip", bytes(frame)))
    assert run_json(capsys, path) == [
        {"standard": "jclip", "number": None, "absent_reason": None, "called_number": None,
         "checksum_ok": False, "start_s": pytest.approx(0.2633, abs=0.01), "absent_code": None}]
    assert main(["dsp", "caller-id", str(path)]) == 0
    assert "チェックサム不一致" in capsys.readouterr().out


def test_human_form_is_japanese_first(tmp_path, capsys):
    path = wav(tmp_path, encode_caller_id("jclip", absent_code="C"))
    assert main(["dsp", "caller-id", str(path)]) == 0
    out = capsys.readouterr().out
    assert "公衆電話" in out and "(C)" in out and "ナンバー・ディスプレイ" in out
    empty = wav(tmp_path, np.zeros(800), name="empty.wav")
    assert main(["dsp", "caller-id", str(empty)]) == 0
    assert "見つかりません" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"RIFF0000WAVEjunk", b"not a wav at all"])
def test_bad_input_gives_a_message_and_nonzero_exit_without_traceback(tmp_path, content):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(content)
    for path in (bad, tmp_path / "missing.wav"):
        proc = subprocess.run([sys.executable, "-c", ENTRY, "dsp", "caller-id", str(path),
                               "--json"], capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0
        assert "Traceback" not in proc.stderr and "エラー" in proc.stderr


def test_stereo_or_wrong_rate_is_refused(tmp_path, capsys):
    import wave
    path = tmp_path / "stereo.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00" * 400)
    assert main(["dsp", "caller-id", str(path), "--json"]) != 0
    assert "8 kHz 16-bit mono" in capsys.readouterr().err
