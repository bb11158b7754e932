"""Web exports are never plain audio at rest (issue 20 item 3), and a bundle needs a pinned signer.

The web service keeps bundles in DATA_DIR/exports for download: their audio
is sealed under a per-bundle key that only the staff member's session (or
their password) opens; the download restores the exact bundle, which
verifies offline.
"""

from __future__ import annotations

import json

from appliance.clock import SystemClock
from appliance.governance.access import Session
from appliance.governance.bundle import pin_signer, verify_bundle
from appliance.governance.exports import bundle_files, create_export, unlock_bundle
from appliance.governance.users import get_user
from appliance.store.datadir import DataDir

from tests.attack._evidence import PASSWORD, build, calls, cli


def test_a_web_bundle_at_rest_holds_no_plain_audio_and_downloads_whole(tmp_path):
    env = build(tmp_path / "site")
    dd = DataDir(env["data"])
    ids = [c["id"] for c in calls(env)]
    out = env["data"] / "exports" / "web-1"
    out.parent.mkdir()
    with dd.open_catalog(SystemClock().now()) as catalog:
        session = Session(get_user(catalog, "kacho"), PASSWORD.encode(), dd, catalog,
                          SystemClock().now)
        result = create_export(session, ids, "law", "照会第9号", "松本警察署", out, seal_audio=True)
        # at rest: no Ogg page anywhere in the exports folder
        for path in (env["data"] / "exports").rglob("*"):
            if path.is_file():
                assert b"OggS" not in path.read_bytes(), path
        assert not list(out.rglob("*.opus"))
        # the download: the bundle as the recipient gets it
        restored = tmp_path / "restored"
        for rel, data in bundle_files(out, result.bundle_key):
            (restored / rel).parent.mkdir(parents=True, exist_ok=True)
            (restored / rel).write_bytes(data)
        assert len(list((restored / "calls").glob("*.opus"))) == 3
        check = pin_signer(verify_bundle(restored), result.fingerprint)
        assert check.ok, check.problems
        # a later session unlocks it with the staff member's own password
        assert unlock_bundle(session, out) == result.bundle_key
    # the same bundle, unpinned, is "signature valid, signer unknown": exit 1
    code, text, err = cli("verify-export", restored, "--json")
    assert code == 1 and json.loads(text)["signer"] == "unknown"
    code, text, err = cli("--data-dir", env["data"], "verify-export", restored, "--json")
    assert code == 0, text


def test_a_bundle_resigned_with_an_updated_fingerprint_is_refused_without_a_pin(tmp_path):
    import hashlib
    from nacl.signing import SigningKey
    from appliance.governance.bundle import public_key_pem
    env = build(tmp_path / "site")
    out = tmp_path / "bundle"
    code, text, err = cli("--data-dir", env["data"], "--config", env["config"], "export",
                          calls(env)[0]["id"], "--ground", "law", "--reference", "照会第3号",
                          "--recipient", "松本警察署", "--out", out, "--user", "kacho",
                          "--password-file", env["password_file"])
    assert code == 0, err
    forger = SigningKey.generate()
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    m["recipient"] = "誰か別の人"
    m["signing_key"]["fingerprint"] = hashlib.sha256(bytes(forger.verify_key)).hexdigest()
    data = json.dumps(m, ensure_ascii=False).encode()
    (out / "manifest.json").write_bytes(data)
    (out / "manifest.sig").write_bytes(forger.sign(data).signature)
    (out / "signing-key.pem").write_text(public_key_pem(forger.verify_key))
    code, text, err = cli("verify-export", out, "--json")
    assert code == 1 and json.loads(text)["signer"] == "unknown"
    code, text, err = cli("--data-dir", env["data"], "verify-export", out, "--json")
    assert code == 1 and json.loads(text)["signer"] == "other"
