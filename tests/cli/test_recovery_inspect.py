"""The recovery key regains access; plain copies can be inspected; bad files fail cleanly."""

from __future__ import annotations

import json

from appliance.store.keystore import format_recovery_key


def test_recovery_key_rewraps_for_a_new_password(run_cli, datadir, staff, tmp_path):
    assert run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", "1")[0] == 0
    cid = json.loads(run_cli("--data-dir", datadir, "calls", "--json", *staff)[1])[0]["id"]
    new = tmp_path / "new.pw"
    new.write_text("brand-new-pass-1\n")
    code, out, err = run_cli("--data-dir", datadir, "recovery", "rewrap", "kacho",
                             "--recovery-key-file", tmp_path / "recovery.txt",
                             "--new-password-file", new, "--reference", "市長決裁-1")
    assert code == 0, err
    # the old password is gone, the new one opens the recordings
    assert run_cli("--data-dir", datadir, "calls", "--json", *staff)[0] != 0
    code, out, err = run_cli("--data-dir", datadir, "extract", cid, "--out", tmp_path / "r.opus",
                             "--ground", "duty", "--reference", "復旧確認",
                             "--user", "kacho", "--password-file", new)
    assert code == 0, err


def test_wrong_recovery_key_fails_clearly_and_is_logged(run_cli, datadir, tmp_path, staff):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(format_recovery_key(bytes(32)))
    new = tmp_path / "new.pw"
    new.write_text("brand-new-pass-1\n")
    code, out, err = run_cli("--data-dir", datadir, "recovery", "rewrap", "kacho",
                             "--recovery-key-file", wrong, "--new-password-file", new)
    assert code != 0 and "wrong recovery key" in err and "Traceback" not in err
    assert run_cli("--data-dir", datadir, "calls", "--json", *staff)[0] == 0  # unchanged
    code, out, err = run_cli("--data-dir", datadir, "ledger", "export", "--csv", *staff)
    assert "拒否" in out


def test_inspect_describes_an_extracted_copy(run_cli, datadir, staff, tmp_path):
    assert run_cli("--data-dir", datadir, "run", "--fast", "--demo-seconds", "2")[0] == 0
    cid = json.loads(run_cli("--data-dir", datadir, "calls", "--json", *staff)[1])[0]["id"]
    out_file = tmp_path / "c.opus"
    assert run_cli("--data-dir", datadir, "extract", cid, "--out", out_file, "--ground", "duty",
                   "--reference", "r", *staff)[0] == 0
    code, out, err = run_cli("inspect", out_file, "--json")
    info = json.loads(out)
    assert code == 0 and info["tags"]["CALL_ID"] == cid and not info["truncated"]
    assert abs(info["duration_s"] - 2.0) < 0.001


def test_bad_files_given_to_the_reader_fail_without_traceback(run_subprocess, tmp_path):
    wav = tmp_path / "x.opus"
    wav.write_bytes(b"RIFF" + bytes(200))
    cut = tmp_path / "cut.opus"
    cut.write_bytes(b"OggS\x00\x02" + bytes(10))
    for path, message in ((wav, "not an Ogg file"), (cut, "truncated header"),
                          (tmp_path / "missing.opus", "cannot read")):
        res = run_subprocess("inspect", path)
        assert res.returncode == 2, res.stderr
        assert message in res.stderr and "Traceback" not in res.stderr
