"""The insider's tampering, each caught by ``appliance verify`` with its own finding (issue 14, 20).

Every test starts from a genuine data directory (three calls, device-signed)
and does what someone who can write the data directory would do.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives import hashes

from appliance.store import sealed
from appliance.store.statements import entry_bytes, merkle, _leaf, statement_message

from tests.attack._evidence import (build, calls, cli, copy_of, db, forge_recording, problems,
                                    rechain, verify)


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    return build(tmp_path_factory.mktemp("golden") / "site")


@pytest.fixture
def env(golden, tmp_path):
    return copy_of(golden, tmp_path / "site")


def test_genuine_evidence_verifies(env):
    code, report = verify(env)
    assert code == 0, report["problems"]
    assert report["device_signed"] is True
    statuses = [f["status"] for f in report["findings"]]
    assert statuses.count("intact") == 3


def test_forged_recording_resealed_with_archive_pub_is_altered(env):
    victim = calls(env)[0]
    forge_recording(env, victim)
    code, report = verify(env)
    assert code == 1
    assert (victim["id"], "altered") in problems(report)


def test_forged_recording_with_catalog_rewritten_is_still_caught(env):
    victim = calls(env)[0]
    forged = forge_recording(env, victim)
    conn = db(env)
    conn.execute("UPDATE calls SET key_id = ?, sha256 = ?, size = ? WHERE id = ?",
                 (forged["key_id"], forged["sha256"], forged["size"], victim["id"]))
    conn.close()
    code, report = verify(env)
    assert code == 1
    found = problems(report)
    assert (victim["id"], "mismatch") in found          # the ledger's RECORD entry disagrees
    assert (victim["id"], "altered") in found           # and the file is not what was bound


def test_forged_recording_with_catalog_and_ledger_rewritten_fails_the_device_signature(env):
    victim = calls(env)[0]
    forged = forge_recording(env, victim)
    conn = db(env)
    conn.execute("UPDATE calls SET key_id = ?, sha256 = ?, size = ? WHERE id = ?",
                 (forged["key_id"], forged["sha256"], forged["size"], victim["id"]))
    seq, detail = conn.execute(
        "SELECT seq, detail FROM ledger WHERE kind = 'record' AND call_ids LIKE ?",
        (f'%{victim["id"]}%',)).fetchone()
    d = json.loads(detail)
    d.update(key_id=forged["key_id"], sha256=forged["sha256"], size=forged["size"])
    conn.execute("UPDATE ledger SET detail = ? WHERE seq = ?",
                 (json.dumps(d, ensure_ascii=False, sort_keys=True), seq))
    rechain(conn, seq)
    conn.close()
    code, report = verify(env)
    assert code == 1
    found = problems(report)
    assert not any(s == "chain" for _, s in found)       # the chain was rewritten well
    assert (victim["id"], "altered") in found             # but the device never signed this
    assert any("device" in p["detail"] for p in report["problems"] if p["call_id"] == victim["id"])


def test_resigned_without_the_device_key_is_caught(env):
    """The forger also writes a capture statement, signed with a key of their own."""
    victim = calls(env)[0]
    forged = forge_recording(env, victim)
    conn = db(env)
    conn.execute("UPDATE calls SET key_id = ?, sha256 = ?, size = ? WHERE id = ?",
                 (forged["key_id"], forged["sha256"], forged["size"], victim["id"]))
    seq, at = conn.execute("SELECT seq, at FROM capture_seals WHERE call_id = ?",
                           (victim["id"],)).fetchone()
    entry = entry_bytes(victim["id"], forged["size"], forged["sha256"], True)
    root, proofs = merkle([_leaf(entry)])
    device_fp = json.loads(conn.execute("SELECT detail FROM ledger WHERE seq = 1").fetchone()[0]
                           )["device_fingerprint"]
    mine = ec.generate_private_key(ec.SECP256R1())
    sig = mine.sign(statement_message(device_fp, seq, at, root.hex()), ec.ECDSA(hashes.SHA256()))
    conn.execute("UPDATE capture_seals SET length = ?, sha256 = ?, final = 1, proof = ?, root = ?,"
                 " sig = ? WHERE call_id = ?", (forged["size"], forged["sha256"], proofs[0],
                                                root.hex(), sig.hex(), victim["id"]))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert any(p["call_id"] == victim["id"] and "does not verify" in p["detail"]
               for p in report["problems"])


def test_statement_deleted_leaves_the_recording_unsigned(env):
    victim = calls(env)[1]
    conn = db(env)
    conn.execute("DELETE FROM capture_seals WHERE call_id = ?", (victim["id"],))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert problems(report) == {(victim["id"], "unsigned")}


def test_truncated_file_is_cut(env):
    victim = calls(env)[0]
    path = env["data"] / victim["recording_path"]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    code, report = verify(env)
    assert code == 1
    assert (victim["id"], "cut") in problems(report)


def test_reordered_chunk_is_altered(env):
    victim = calls(env)[0]
    path = env["data"] / victim["recording_path"]
    data = path.read_bytes()
    layout = sealed.read_layout(data)
    a, b = layout.chunks[1], layout.chunks[2]
    ca = data[a.offset:b.offset]
    cb = data[b.offset:b.offset + sealed.FRAME.size + b.clen]
    path.write_bytes(data[:a.offset] + cb + ca + data[b.offset + len(cb):])
    assert len(path.read_bytes()) == len(data)
    code, report = verify(env)
    assert code == 1
    assert (victim["id"], "altered") in problems(report)


def test_swapped_archive_pub_is_reported_and_not_sealed_to(env):
    from nacl.public import PrivateKey
    attacker = PrivateKey.generate()
    (env["data"] / "keys" / "archive.pub").write_bytes(bytes(attacker.public_key))
    code, report = verify(env)
    assert code == 1
    assert ("keys", "key") in problems(report)
    # the recorder refuses the swapped key: a new call's data key opens with the staff's key,
    # not the attacker's, and an alarm says so
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "run", "--fast",
                         "--demo-seconds", "1")
    assert code == 0, err
    assert "archive_key" in err or "保管鍵" in err
    conn = db(env)
    alarm = conn.execute("SELECT code FROM alarms WHERE code = 'archive_key_mismatch'"
                         " AND cleared_at IS NULL").fetchone()
    newest = conn.execute("SELECT id, key_id FROM calls ORDER BY started_at DESC LIMIT 1").fetchone()
    conn.close()
    assert alarm is not None
    from nacl.public import SealedBox
    from nacl.exceptions import CryptoError
    blob = (env["data"] / "keys" / "data" / f"{newest[1]}.key").read_bytes()
    from appliance.store.keystore import KeyStore
    ks = KeyStore(env["data"] / "keys")
    staff_key = ks.unwrap_with_password("kacho", b"kanri-pass-1")
    assert len(ks.data_key(newest[1], staff_key)) == 32
    with pytest.raises(CryptoError):
        SealedBox(attacker).decrypt(blob[-80:])


def test_wraps_fingerprint_changed_is_reported(env):
    path = env["data"] / "keys" / "wraps.json"
    wraps = json.loads(path.read_text())
    wraps["archive_fingerprint"] = "0" * 64
    path.write_text(json.dumps(wraps))
    code, report = verify(env)
    assert ("keys", "key") in problems(report)


def test_swapped_device_pub_is_reported(env):
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization
    (env["data"] / "keys" / "device.pub").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, report = verify(env)
    assert code == 1
    assert ("keys", "key") in problems(report)


def test_device_key_given_by_the_city_must_match(env, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import serialization
    other = tmp_path / "other.pem"
    other.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    code, report = verify(env, "--device-key", other)
    assert code == 1 and ("keys", "key") in problems(report)
    code, report = verify(env, "--device-key", env["data"] / "keys" / "device.pub")
    assert code == 0, report["problems"]


def test_deleted_row_with_its_file_is_missing(env):
    victim = calls(env)[1]
    os.unlink(env["data"] / victim["recording_path"])
    conn = db(env)
    conn.execute("DELETE FROM capture_seals WHERE call_id = ?", (victim["id"],))
    conn.execute("DELETE FROM calls WHERE id = ?", (victim["id"],))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert problems(report) == {(victim["id"], "missing")}


def test_row_set_erased_without_an_erase_entry_is_a_mismatch(env):
    victim = calls(env)[1]
    conn = db(env)
    conn.execute("UPDATE calls SET state = 'erased', far_number = NULL WHERE id = ?",
                 (victim["id"],))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert problems(report) == {(victim["id"], "mismatch")}


@pytest.mark.parametrize("how", ["deleted", "truncated", "padded"])
def test_deleted_or_damaged_data_key_is_caught(env, how):
    victim = calls(env)[2]
    path = env["data"] / "keys" / "data" / f"{victim['key_id']}.key"
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    else:
        path.write_bytes(path.read_bytes() + b"\0")
    code, report = verify(env)
    assert code == 1
    assert problems(report) == {(victim["id"], "data_key")}


@pytest.mark.parametrize("column,value", [("far_number", "0399999999"),
                                          ("started_at", "2020-01-01T00:00:00.000+00:00"),
                                          ("duration_s", 1.0), ("direction", None)])
def test_changed_numbers_or_times_are_a_mismatch(env, column, value):
    victim = calls(env)[0]
    if column == "direction":
        value = "in" if victim["direction"] == "out" else "out"
    conn = db(env)
    conn.execute(f"UPDATE calls SET {column} = ? WHERE id = ?", (value, victim["id"]))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert problems(report) == {(victim["id"], "mismatch")}
    assert "times/numbers" in report["problems"][0]["detail"]


@pytest.mark.parametrize("edit", ["alter", "delete", "insert", "reorder"])
def test_ledger_edits_break_the_chain(env, edit):
    conn = db(env)
    n = conn.execute("SELECT MAX(seq) FROM ledger").fetchone()[0]
    mid = n // 2
    if edit == "alter":
        conn.execute("UPDATE ledger SET actor = 'someone' WHERE seq = ?", (mid,))
    elif edit == "delete":
        conn.execute("DELETE FROM ledger WHERE seq = ?", (mid,))
    elif edit == "insert":
        row = conn.execute("SELECT * FROM ledger WHERE seq = ?", (mid,)).fetchone()
        conn.execute("UPDATE ledger SET seq = seq + 1000 WHERE seq > ?", (mid,))
        conn.execute("INSERT INTO ledger VALUES (?, ?, 'maintenance', '[]', NULL, NULL, 'x', NULL,"
                     " NULL, '{}', ?, ?)", (mid + 1, row[1], row[-1], "f" * 64))
    else:
        a = conn.execute("SELECT * FROM ledger WHERE seq = ?", (mid,)).fetchone()
        b = conn.execute("SELECT * FROM ledger WHERE seq = ?", (mid + 1,)).fetchone()
        conn.execute("DELETE FROM ledger WHERE seq IN (?, ?)", (mid, mid + 1))
        conn.execute(f"INSERT INTO ledger VALUES ({', '.join('?' * len(b))})", (mid, *b[1:]))
        conn.execute(f"INSERT INTO ledger VALUES ({', '.join('?' * len(a))})", (mid + 1, *a[1:]))
    conn.close()
    code, report = verify(env)
    assert code == 1
    chain = [p for p in report["problems"] if p["status"] == "chain"]
    assert chain and chain[0]["detail"].startswith("chain broken at ")


def test_row_left_recording_while_no_recorder_runs_is_stale(env):
    victim = calls(env)[2]
    conn = db(env)
    conn.execute("UPDATE calls SET state = 'recording' WHERE id = ?", (victim["id"],))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert problems(report) == {(victim["id"], "stale")}


def test_verify_never_traces_back_on_a_damaged_catalog_row(env):
    conn = db(env)
    conn.execute("UPDATE calls SET recording_path = '../../etc/passwd' WHERE rowid = 1")
    conn.execute("UPDATE ledger SET detail = 'not json' WHERE seq = 2")
    conn.close()
    code, report = verify(env)
    assert code == 1


def test_excluded_calls_kept_as_metadata_verify_without_crashing(tmp_path):
    """issue 20: verify crashed (TypeError) on rows kept with keep_metadata = true."""
    env = build(tmp_path / "site", '[[exclusion]]\ntrunk = "T2"\nkeep_metadata = true\n')
    code, report = verify(env)
    assert code == 0, report["problems"]
    statuses = sorted(f["status"] for f in report["findings"])
    assert statuses == ["intact", "intact", "metadata"]
    # and such a row is bound like any other: a changed number is caught
    conn = db(env)
    conn.execute("UPDATE calls SET far_number = '0000' WHERE excluded = 1")
    conn.close()
    code, report = verify(env)
    assert code == 1 and [p["status"] for p in report["problems"]] == ["mismatch"]


def test_a_recording_cut_by_kill_9_verifies_up_to_its_last_signed_length(tmp_path):
    """A crash: the recovery closes the call as truncated; the device signed all but ≤ 2 s."""
    import signal
    import subprocess
    import sys
    import time
    env = build(tmp_path / "site")
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "--data-dir", str(env["data"]),
                             "--config", str(env["config"]), "run", "--demo-seconds", "30"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while "recording" not in (proc.stdout.readline() or "") and time.monotonic() < deadline:
            pass
        time.sleep(3.5)
        # while the recorder runs (it holds the recorder lock) the row is 'recording', fine
        code, report = verify(env)
        assert code == 0, report["problems"]
        assert [f["status"] for f in report["findings"]].count("recording") == 1
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
    # killed: nobody holds the lock, the row left 'recording' is stale until a restart
    code, report = verify(env)
    assert code == 1 and [p["status"] for p in report["problems"]] == ["stale"]
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "run", "--fast",
                         "--demo-seconds", "0.5")
    assert code == 0, err
    code, report = verify(env)
    assert code == 0, report["problems"]
    cut = [f for f in report["findings"] if f["status"] == "truncated"]
    assert len(cut) == 1
    conn = db(env)
    length, final = conn.execute("SELECT length, final FROM capture_seals WHERE call_id = ?",
                                 (cut[0]["call_id"],)).fetchone()
    size = conn.execute("SELECT size FROM calls WHERE id = ?", (cut[0]["call_id"],)).fetchone()[0]
    conn.close()
    assert final == 0 and 0 < length <= size
    # and cutting it further than the crash did is caught
    victim = [c for c in calls(env) if c["id"] == cut[0]["call_id"]][0]
    path = env["data"] / victim["recording_path"]
    path.write_bytes(path.read_bytes()[: length // 2])
    code, report = verify(env)
    assert code == 1 and (victim["id"], "cut") in problems(report)
