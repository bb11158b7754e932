"""The ledger time-stamped outside the box (RFC 3161), attacked (issue 14 item 3).

A real OpenSSL time-stamping authority runs in its own process
(tests/_servers/tsa.py); the recorder stamps the ledger's head while it
runs and at stop, exports stamp their manifest.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests._servers.tsa import TsaServer
from tests.attack._evidence import build, calls, cli, copy_of, db, rechain, staff, verify


@pytest.fixture(scope="module")
def tsa(tmp_path_factory):
    server = TsaServer(tmp_path_factory.mktemp("tsa"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def golden(tmp_path_factory, tsa):
    extra = (f'[timestamp]\nurl = "{tsa.url}"\nca_file = "{tsa.ca_file}"\n'
             "interval_minutes = 0.05\n")
    return build(tmp_path_factory.mktemp("golden-ts") / "site", extra)


@pytest.fixture
def env(golden, tmp_path):
    return copy_of(golden, tmp_path / "site")


def ledger_verify(env, *extra) -> tuple[int, dict]:
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "ledger",
                         "verify", "--json", *extra)
    assert "Traceback" not in err
    return code, json.loads(out)


def test_the_recorder_stamps_the_ledger_and_openssl_accepts_every_token(env, tmp_path, tsa):
    code, report = ledger_verify(env)
    assert code == 0, report
    assert report["tokens"] >= 1 and report["signatures_checked"] is True
    last_record = db(env).execute("SELECT MAX(seq) FROM ledger WHERE kind = 'record'"
                                  ).fetchone()[0]
    assert report["fixed_through"]["seq"] >= last_record
    out = tmp_path / "tokens"
    out.mkdir()
    code, text, err = cli("--data-dir", env["data"], "ledger", "tokens", "--out", out, "--json")
    assert code == 0, err
    listing = json.loads(text)
    assert listing
    for t in listing:      # the README's command, by hand
        res = subprocess.run(["openssl", "ts", "-verify", "-digest", t["digest"], "-in", t["file"],
                              "-token_in", "-CAfile", str(tsa.ca_file)],
                             capture_output=True, text=True, timeout=60)
        assert "Verification: OK" in res.stdout, res.stdout + res.stderr


def test_a_ledger_rewritten_after_a_token_is_reported_with_the_token(env):
    conn = db(env)
    token_seq, detail = conn.execute("SELECT seq, detail FROM ledger WHERE kind = 'timestamp'"
                                     " ORDER BY seq LIMIT 1").fetchone()
    covers = json.loads(detail)["covers_seq"]
    n = max(2, covers - 1)
    conn.execute("UPDATE ledger SET actor = 'someone else' WHERE seq = ?", (n,))
    rechain(conn, n)       # the insider recomputes every hash from N on
    conn.close()
    code, report = ledger_verify(env)
    assert code == 1
    assert report["first_bad_seq"] is None          # the chain itself looks whole
    bad = report["token_problems"]
    assert bad and bad[0]["token_seq"] == token_seq and bad[0]["covers_seq"] == covers
    assert "rewritten after" in bad[0]["problem"]
    # the insider also rewrites the token entry's own note of the head: the signed imprint stays
    conn = db(env)
    d = json.loads(conn.execute("SELECT detail FROM ledger WHERE seq = ?", (token_seq,)).fetchone()[0])
    d["covers_hash"] = conn.execute("SELECT hash FROM ledger WHERE seq = ?", (covers,)).fetchone()[0]
    conn.execute("UPDATE ledger SET detail = ? WHERE seq = ?",
                 (json.dumps(d, ensure_ascii=False, sort_keys=True), token_seq))
    rechain(conn, token_seq)
    conn.close()
    code, report = ledger_verify(env)
    assert code == 1 and report["token_problems"][0]["token_seq"] == token_seq


def test_a_forged_token_from_another_tsa_fails_the_chain_check(env, tmp_path):
    other = TsaServer(tmp_path / "other-tsa")
    try:
        from appliance.governance.timestamps import TsaClient
        import base64
        conn = db(env)
        seq, detail = conn.execute("SELECT seq, detail FROM ledger WHERE kind = 'timestamp'"
                                   " ORDER BY seq LIMIT 1").fetchone()
        d = json.loads(detail)
        d["token"] = base64.b64encode(TsaClient(other.url).stamp(bytes.fromhex(d["covers_hash"]))
                                      ).decode()
        conn.execute("UPDATE ledger SET detail = ? WHERE seq = ?",
                     (json.dumps(d, ensure_ascii=False, sort_keys=True), seq))
        rechain(conn, seq)
        conn.close()
    finally:
        other.stop()
    code, report = ledger_verify(env)
    assert code == 1
    assert "does not verify against the TSA's CA" in report["token_problems"][0]["problem"]


def test_tail_cut_after_a_token_is_caught_by_verify(env):
    conn = db(env)
    first_record = conn.execute("SELECT MIN(seq) FROM ledger WHERE kind = 'record'").fetchone()[0]
    conn.execute("DELETE FROM ledger WHERE seq > ?", (first_record,))
    conn.close()
    code, report = verify(env)
    assert code == 1
    assert sum(1 for p in report["problems"] if p["status"] == "mismatch") == 2


def test_unreachable_tsa_alarms_and_entries_keep_flowing(env, tsa):
    tsa.refuse()
    try:
        code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "run",
                             "--fast", "--demo-seconds", "1")
        assert code == 0, err
    finally:
        tsa.accept()
    conn = db(env)
    alarm = conn.execute("SELECT detail FROM alarms WHERE code = 'timestamp_failed'"
                         " AND cleared_at IS NULL").fetchone()
    newest = conn.execute("SELECT state FROM calls ORDER BY started_at DESC LIMIT 1").fetchone()
    conn.close()
    assert alarm is not None and newest[0] == "complete"
    code, report = ledger_verify(env)
    assert code == 0 and report["unstamped_since_seq"] is not None
    # the TSA is back: the next token covers what arrived meanwhile, and the alarm clears
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "run", "--fast",
                         "--demo-seconds", "1")
    assert code == 0, err
    code, report = ledger_verify(env)
    conn = db(env)
    last_record = conn.execute("SELECT MAX(seq) FROM ledger WHERE kind = 'record'").fetchone()[0]
    assert code == 0 and report["fixed_through"]["seq"] >= last_record, report
    assert conn.execute("SELECT COUNT(*) FROM alarms WHERE code = 'timestamp_failed'"
                        " AND cleared_at IS NULL").fetchone()[0] == 0
    conn.close()


def test_an_export_carries_its_manifest_token_checked_offline(env, tmp_path, tsa):
    victim = calls(env)[0]
    out = tmp_path / "bundle"
    code, text, err = cli("--data-dir", env["data"], "--config", env["config"], "export",
                          victim["id"], "--ground", "law", "--reference", "照会第1号",
                          "--recipient", "松本警察署", "--out", out, *staff(env))
    assert code == 0, err
    assert (out / "manifest.tsr").exists()
    fp = json.loads(cli("--data-dir", env["data"], "signing-key", "--json")[1])["fingerprint"]
    code, text, err = cli("verify-export", out, "--fingerprint", fp, "--tsa-ca", tsa.ca_file,
                          "--json")
    report = json.loads(text)
    assert code == 0, report
    assert report["timestamp"]["ok"] and report["timestamp"]["pinned"]
    res = subprocess.run(["openssl", "ts", "-verify", "-data", "manifest.json", "-in",
                          "manifest.tsr", "-token_in", "-CAfile", str(tsa.ca_file)], cwd=out,
                         capture_output=True, text=True, timeout=60)
    assert "Verification: OK" in res.stdout
    # the ledger head after the 提供 entry was stamped too
    conn = db(env)
    kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger ORDER BY seq DESC LIMIT 2")]
    conn.close()
    assert kinds == ["timestamp", "provide"]
    # a token from elsewhere, or a damaged one, fails
    token = (out / "manifest.tsr").read_bytes()
    (out / "manifest.tsr").write_bytes(token[:-8] + bytes(8))
    code, text, err = cli("verify-export", out, "--fingerprint", fp, "--tsa-ca", tsa.ca_file)
    assert code == 1
