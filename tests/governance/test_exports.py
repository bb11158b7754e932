"""Exports (提供, R12, R13): the signed bundle, its checks, and every refusal on the ledger."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import wave
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from appliance.cli import main as cli_main
from appliance.engine.recorder import CallRecorder
from appliance.engine.synthetic import two_leg_frames
from appliance.governance.bundle import public_key_pem, verify_bundle
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir
from appliance.store.opus import read_recording

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
FAR = ("0263345678", "09012345678")
# the recipient's obligations as the seed words them (要綱第8条第2項第1号〜第3号)
SEED_TERMS = ("通話記録を無断で複製しないこと", "目的以外の利用及び第三者への無断提供を行わないこと",
              "速やかにデータの返却、消去等必要な処理を行うこと")


def record(datadir: Path, far_number: str, started_at: datetime, seconds: float = 1.0,
           seed: int = 1) -> str:
    dd = DataDir(datadir)
    with dd.open_catalog(datetime.now(timezone.utc)) as cat:
        rec = CallRecorder(dd, cat, "東庁舎").start("T1", 1, "in", started_at)
        for far, near in two_leg_frames(seconds, seed=seed):
            rec.write(far, near)
        rec.finish(started_at + timedelta(seconds=seconds), answered_at=started_at,
                   far_number=far_number, near_number="0263340001", notice="played")
        return rec.call_id


@pytest.fixture
def pw(tmp_path):
    def make(name: str) -> Path:
        p = tmp_path / f"{name}.pw"
        p.write_text(f"{name}-pass-1\n")
        return p
    return make


def as_(name, pw):
    return ["--user", name, "--password-file", pw(name)]


MANAGER_PASSWORD = "kanri-pass-1"   # the password of conftest's 'staff' credentials


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """Built once (argon2 is slow on purpose), copied for each test: manager kacho plus a
    handler, a deputy (not acting) and a technician, and two recorded calls."""
    root = tmp_path_factory.mktemp("office")
    d = root / "data"
    (root / "kacho.pw").write_text(MANAGER_PASSWORD + "\n")

    def cli(*args):
        assert cli_main([str(a) for a in args]) == 0, args
    cli("--data-dir", d, "init", "--manager", "kacho", "--password-file", root / "kacho.pw",
        "--recovery-key-file", root / "recovery.txt")
    for name, role in (("tanto", "handler"), ("dairi", "deputy"), ("hoshu", "technician")):
        (root / f"{name}.pw").write_text(f"{name}-pass-1\n")
        cli("--data-dir", d, "user", "add", name, "--role", role, "--new-password-file",
            root / f"{name}.pw", "--reference", "人事発令1", "--user", "kacho",
            "--password-file", root / "kacho.pw")
    t0 = datetime(2026, 1, 6, 1, 30, tzinfo=timezone.utc)
    calls = [record(d, FAR[0], t0, 2.0, seed=1),
             record(d, FAR[1], t0 + timedelta(hours=1), 1.0, seed=2)]
    return d, calls


@pytest.fixture
def datadir(tmp_path, template):
    d = tmp_path / "data"
    shutil.copytree(template[0], d)
    return d


@pytest.fixture
def office(datadir, template) -> list[str]:
    return list(template[1])


def ledger(datadir) -> list[dict]:
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        return list(cat.db["ledger"].rows_where(order_by="seq"))


def exports_rows(datadir) -> list[dict]:
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        return list(cat.db["exports"].rows_where())


def export(run_cli, datadir, who, calls, out, *extra):
    return run_cli("--data-dir", datadir, "export", *calls, "--recipient", "長野県松本警察署 刑事課",
                   "--out", out, *extra, *who)


@pytest.fixture
def bundle(run_cli, datadir, staff, office, tmp_path) -> Path:
    out = tmp_path / "bundle"
    code, stdout, err = export(run_cli, datadir, staff, office, out, "--ground", "investigation",
                               "--reference", "松警刑第123号")
    assert code == 0, err
    return out


def files_in(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_bundle_holds_the_calls_the_ground_and_the_terms(bundle, office, datadir):
    assert files_in(bundle) == {"manifest.json", "manifest.sig", "signing-key.pem", "cover.html",
                                "README.txt", *(f"calls/{c}.opus" for c in office)}
    for p in bundle.rglob("*"):
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    m = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    assert m["ground"] == {"code": "investigation", "label_ja": "捜査機関からの照会",
                           "label_en": "request from an investigating authority",
                           "article": "第8条第1項第2号"}
    assert (m["reference"], m["recipient"]) == ("松警刑第123号", "長野県松本警察署 刑事課")
    assert m["actor"]["name"] == "kacho" and m["actor"]["role_ja"] == "管理責任者"
    assert datetime.fromisoformat(m["created_at"]).utcoffset() == timedelta(hours=9)
    assert [c["id"] for c in m["calls"]] == office
    assert [c["far_number"] for c in m["calls"]] == list(FAR)
    assert all(c["near_number"] == "0263340001" for c in m["calls"])
    pinned = {f["path"]: f for f in m["files"]}
    for c in m["calls"]:
        data = (bundle / c["file"]).read_bytes()
        assert c["sha256"] == hashlib.sha256(data).hexdigest() == pinned[c["file"]]["sha256"]
        assert c["size"] == len(data) and c["complete"] is True
        assert len(c["recording_sha256"]) == 64
    assert m["terms"]["article"] == "要綱第8条第2項"
    for phrase in SEED_TERMS:
        assert any(phrase in t for t in m["terms"]["ja"]), phrase
    assert len(m["terms"]["en"]) == 3 and "third party" in m["terms"]["en"][1]
    assert "erase" in m["terms"]["en"][2]
    # the cover sheet a person prints: who, why, what, the terms and where to sign
    cover = (bundle / "cover.html").read_text(encoding="utf-8")
    for text in ("通話記録提供書", "長野県松本警察署 刑事課", "捜査機関からの照会", "第8条第1項第2号",
                 "松警刑第123号", *office, *FAR, *SEED_TERMS, "受領者", "印", "@media print",
                 m["signing_key"]["fingerprint"]):
        assert text in cover, text


def test_export_is_on_the_ledger_and_in_the_exports_table(bundle, office, datadir):
    entry = ledger(datadir)[-1]
    assert (entry["kind"], entry["ground"], entry["reference"], entry["recipient"],
            entry["actor"]) == ("provide", "investigation", "松警刑第123号",
                                "長野県松本警察署 刑事課", "kacho")
    assert json.loads(entry["call_ids"]) == office
    manifest_sha = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    assert json.loads(entry["detail"])["manifest_sha256"] == manifest_sha
    (row,) = exports_rows(datadir)
    assert (row["manifest_sha256"], row["path"], json.loads(row["call_ids"]), row["request_id"]) \
        == (manifest_sha, str(bundle.resolve()), office, None)


def test_ogg_files_pass_opusinfo_and_decode(bundle, office, tmp_path):
    for cid, seconds in zip(office, (2.0, 1.0)):
        ogg = bundle / "calls" / f"{cid}.opus"
        info = subprocess.run(["opusinfo", str(ogg)], capture_output=True, text=True, timeout=60)
        assert info.returncode == 0, info.stdout + info.stderr
        assert "Channels: 2" in info.stdout
        wav = tmp_path / f"{cid}.wav"
        dec = subprocess.run(["opusdec", "--rate", "8000", str(ogg), str(wav)],
                             capture_output=True, text=True, timeout=60)
        assert dec.returncode == 0, dec.stderr
        with wave.open(str(wav)) as w:
            assert w.getnchannels() == 2
            assert w.getnframes() == pytest.approx(seconds * 8000, abs=80)
        rec = read_recording(ogg.read_bytes())
        assert rec.tags["CALL_ID"] == cid and not rec.truncated
        assert abs(rec.far.astype(float)).mean() > 100     # real audio, not silence


def test_bundle_verifies_after_the_data_dir_is_deleted(bundle, datadir, run_cli, run_subprocess,
                                                      tmp_path):
    code, out, err = run_cli("--data-dir", datadir, "signing-key", "--out", tmp_path / "pub.pem",
                             "--json")
    assert code == 0, err
    published = json.loads(out)["fingerprint"]
    shutil.rmtree(datadir)
    # no pin: the signature holds but nobody says whose it is (issue 20 item 7)
    res = run_subprocess("verify-export", bundle)
    assert res.returncode == 1, res.stdout + res.stderr
    assert "signature valid, signer unknown" in res.stdout and published in res.stdout
    res = run_subprocess("verify-export", bundle, "--fingerprint", published)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "検証成功" in res.stdout
    res = run_subprocess("verify-export", bundle, "--public-key", tmp_path / "pub.pem", "--json")
    report = json.loads(res.stdout)
    assert res.returncode == 0 and report["ok"] and report["key_source"] == "pinned"
    assert report["fingerprint"] == published and report["files_checked"] == 4


def test_altering_any_byte_of_any_file_fails_verification(bundle):
    assert verify_bundle(bundle).ok
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    checked = 0
    for path in files:
        original = path.read_bytes()
        n = len(original)
        positions = sorted({0, n - 1, *range(0, n, max(1, n // 9))})[:12]
        for pos in positions:
            data = bytearray(original)
            data[pos] ^= 0x01
            path.write_bytes(bytes(data))
            assert not verify_bundle(bundle).ok, (path.name, pos)
            checked += 1
        path.write_bytes(original)
    assert checked >= 5 * len(files)
    assert verify_bundle(bundle).ok


def test_cli_names_the_altered_file_and_exits_1(bundle, office, run_cli):
    ogg = bundle / "calls" / f"{office[1]}.opus"
    data = bytearray(ogg.read_bytes())
    data[len(data) // 2] ^= 0x40
    ogg.write_bytes(bytes(data))
    code, out, err = run_cli("verify-export", bundle)
    assert code == 1 and "検証失敗" in out and f"calls/{office[1]}.opus" in out and "altered" in out
    code, out, err = run_cli("verify-export", bundle, "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and office[1] in report["reason"]


@pytest.mark.parametrize("damage, reason", [
    ("remove_call", "missing"),
    ("extra_file", "extra file"),
    ("extra_dir", "extra file"),
    ("remove_signature", "manifest.sig is missing"),
    ("remove_manifest", "manifest.json is missing"),
])
def test_missing_and_extra_files_fail(bundle, office, run_cli, damage, reason):
    if damage == "remove_call":
        (bundle / "calls" / f"{office[0]}.opus").unlink()
    elif damage == "extra_file":
        (bundle / "calls" / "extra.opus").write_bytes(b"OggS")
    elif damage == "extra_dir":
        (bundle / "notes").mkdir()
    elif damage == "remove_signature":
        (bundle / "manifest.sig").unlink()
    else:
        (bundle / "manifest.json").unlink()
    code, out, err = run_cli("verify-export", bundle, "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"] and reason in report["reason"], report


def test_a_forger_with_another_key_passes_only_without_the_published_key(bundle, datadir,
                                                                         run_cli, tmp_path):
    code, out, err = run_cli("--data-dir", datadir, "signing-key", "--out", tmp_path / "pub.pem")
    assert code == 0, err
    # re-sign an edited manifest with a key of their own and swap the bundled public key
    forger = SigningKey.generate()
    m = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    m["recipient"] = "誰か別の人"
    m["signing_key"]["fingerprint"] = hashlib.sha256(bytes(forger.verify_key)).hexdigest()
    data = json.dumps(m, ensure_ascii=False).encode()
    (bundle / "manifest.json").write_bytes(data)
    (bundle / "manifest.sig").write_bytes(forger.sign(data).signature)
    (bundle / "signing-key.pem").write_text(public_key_pem(forger.verify_key))
    code, out, err = run_cli("verify-export", bundle)
    # internally consistent, but nothing says who signed it: not valid (issue 20 item 7)
    assert code == 1 and m["signing_key"]["fingerprint"] in out and "signer unknown" in out
    code, out, err = run_cli("verify-export", bundle, "--public-key", tmp_path / "pub.pem")
    assert code == 1 and "not the published key" in out
    published = json.loads(run_cli("--data-dir", datadir, "signing-key", "--json")[1])
    code, out, err = run_cli("verify-export", bundle, "--fingerprint", published["fingerprint"])
    assert code == 1 and "not by the published key" in out
    # on the appliance itself its own key is the pin
    code, out, err = run_cli("--data-dir", datadir, "verify-export", bundle)
    assert code == 1 and "not by the published key" in out


def test_the_readme_commands_check_a_bundle_with_standard_tools(bundle, datadir, run_cli):
    block = next(b for b in README.split("```sh")[1:] if "openssl pkeyutl" in b).split("```")[0]
    commands = [ln.split("   #")[0] for ln in block.strip().splitlines()]
    assert len(commands) == 3
    results = [subprocess.run(["bash", "-o", "pipefail", "-c", c], cwd=bundle,
                              capture_output=True, text=True, timeout=60) for c in commands]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert "Signature Verified Successfully" in results[0].stdout
    assert results[1].stdout.count(": OK") == 4
    fingerprint = json.loads(run_cli("--data-dir", datadir, "signing-key", "--json")[1])
    assert results[2].stdout.split()[0] == fingerprint["fingerprint"]
    # and the same commands catch an edit
    m = bundle / "manifest.json"
    m.write_bytes(m.read_bytes().replace("松警刑第123号".encode(), "松警刑第124号".encode()))
    assert subprocess.run(["bash", "-c", commands[0]], cwd=bundle, capture_output=True,
                          timeout=60).returncode != 0
    cover = bundle / "cover.html"
    cover.write_bytes(cover.read_bytes() + b" ")
    assert subprocess.run(["bash", "-o", "pipefail", "-c", commands[1]], cwd=bundle,
                          capture_output=True, timeout=60).returncode != 0


REFUSALS = [
    ("hoshu", ["--ground", "law", "--reference", "r1"], "technicians never see numbers or audio"),
    ("kacho", ["--reference", "r1"], "a ground is required"),
    ("kacho", ["--ground", "duty", "--reference", "苦情-1"],
     "'duty' is not a ground for providing records to a third party"),
    ("tanto", ["--ground", "duty", "--reference", "苦情-1"],
     "'duty' is not a ground for providing records to a third party"),
    ("dairi", ["--ground", "law", "--reference", "r1"], "acts only while marked acting"),
    ("tanto", ["--ground", "investigation", "--reference", "松警刑第1号"],
     "may not act on the ground investigation"),
    ("kacho", ["--ground", "mayor"], "reference of the mayor's approval"),
    ("kacho", ["--ground", "disclosure", "--reference", "開示-1"], "appliance request export"),
]


@pytest.mark.parametrize("who, args, message", REFUSALS)
def test_refusals_are_clear_leave_nothing_and_land_on_the_ledger(
        run_cli, datadir, staff, office, pw, tmp_path, who, args, message):
    creds = staff if who == "kacho" else as_(who, pw)
    out = tmp_path / "refused"
    before = len(ledger(datadir))
    code, stdout, err = export(run_cli, datadir, creds, office, out, *args)
    assert code == 2 and message in err, err
    assert "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".refused*"))
    entries = ledger(datadir)
    assert len(entries) == before + 1
    entry = entries[-1]
    assert (entry["kind"], entry["actor"]) == ("refused", who)
    assert json.loads(entry["detail"])["action"] == "export"
    assert json.loads(entry["call_ids"]) == office
    assert exports_rows(datadir) == []


def test_mayor_approval_and_an_acting_deputy(run_cli, datadir, staff, office, pw, tmp_path):
    code, out, err = run_cli("--data-dir", datadir, "acting", "on", "--reference", "課長出張",
                             *as_("dairi", pw))
    assert code == 0, err
    code, out, err = export(run_cli, datadir, as_("dairi", pw), office[:1], tmp_path / "m",
                            "--ground", "mayor", "--reference", "市長決裁第45号")
    assert code == 0, err
    entry = ledger(datadir)[-1]
    assert (entry["kind"], entry["ground"], entry["reference"], entry["approver"],
            entry["actor"]) == ("provide", "mayor", "市長決裁第45号", "市長", "dairi")
    m = json.loads((tmp_path / "m" / "manifest.json").read_text(encoding="utf-8"))
    assert m["approver"] == "市長" and m["ground"]["article"] == "第8条第1項第3号"
    assert verify_bundle(tmp_path / "m").ok


def test_export_never_overwrites_and_refuses_an_altered_recording(run_cli, datadir, staff,
                                                                  office, tmp_path):
    existing = tmp_path / "exists"
    existing.mkdir()
    code, out, err = export(run_cli, datadir, staff, office, existing, "--ground", "law",
                            "--reference", "r")
    assert code == 2 and "already exists" in err and list(existing.iterdir()) == []
    with Catalog.open(datadir / "catalog.sqlite", datetime.now(timezone.utc)) as cat:
        sealed = datadir / cat.get_call(office[1])["recording_path"]
    data = bytearray(sealed.read_bytes())
    data[-5] ^= 1
    sealed.write_bytes(bytes(data))
    code, out, err = export(run_cli, datadir, staff, office, tmp_path / "b", "--ground", "law",
                            "--reference", "r")
    assert code == 2 and "altered" in err and not (tmp_path / "b").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".b.")]
    assert exports_rows(datadir) == []


def test_recipient_text_is_escaped_on_the_cover(run_cli, datadir, staff, office, tmp_path):
    code, out, err = run_cli("--data-dir", datadir, "export", office[0], "--recipient",
                             "<script>alert(1)</script>", "--out", tmp_path / "x",
                             "--ground", "law", "--reference", "r&d", *staff)
    assert code == 0, err
    cover = (tmp_path / "x" / "cover.html").read_text(encoding="utf-8")
    assert "<script>" not in cover and "&lt;script&gt;" in cover and "r&amp;d" in cover
    assert re.search(r"<title>通話記録提供書 EXP-\d{8}-\d{3}</title>", cover)


def test_each_export_gets_its_own_number(run_cli, datadir, staff, office, tmp_path):
    ids = []
    for i in range(3):
        code, out, err = export(run_cli, datadir, staff, office[i % 2:i % 2 + 1],
                                tmp_path / f"b{i}", "--ground", "law", "--reference", f"r{i}",
                                "--json")
        assert code == 0, err
        ids.append(json.loads(out)["export_id"])
    assert len(set(ids)) == 3
    if len({i.rsplit("-", 1)[0] for i in ids}) == 1:     # not across midnight (Japan time)
        assert [int(i.rsplit("-", 1)[1]) for i in ids] == [1, 2, 3]
    assert sorted(r["id"] for r in exports_rows(datadir)) == ids
    for i in range(3):
        assert verify_bundle(tmp_path / f"b{i}").export_id == ids[i]


def _session(datadir: Path, name: str, password: str):
    from appliance.governance.access import Session
    from appliance.governance.users import authenticate
    dd = DataDir(datadir)
    catalog = dd.open_catalog(datetime.now(timezone.utc))
    user = authenticate(catalog, name, password.encode())
    return Session(user, password.encode(), dd, catalog, lambda: datetime.now(timezone.utc))


def test_only_the_maker_copies_a_bundle_out_and_each_copy_is_ledgered(bundle, datadir,
                                                                      tmp_path):
    from appliance.errors import Forbidden
    from appliance.governance.exports import (ExportNotHere, UnknownExport, bundle_for_copy,
                                              record_copy)
    export_id = exports_rows(datadir)[0]["id"]
    kacho = _session(datadir, "kacho", MANAGER_PASSWORD)
    try:
        row, folder = bundle_for_copy(kacho, export_id, tmp_path)
        assert folder.resolve() == bundle.resolve() and row["actor"] == "kacho"
        with pytest.raises(ExportNotHere):        # not inside the exports folder given
            bundle_for_copy(kacho, export_id, tmp_path / "elsewhere")
        with pytest.raises(UnknownExport):
            bundle_for_copy(kacho, "no-such-export", tmp_path)
        record_copy(kacho, row, via="test", size=1234)
    finally:
        kacho.catalog.close()
    tanto = _session(datadir, "tanto", "tanto-pass-1")
    try:
        with pytest.raises(Forbidden):
            bundle_for_copy(tanto, export_id, tmp_path)
    finally:
        tanto.catalog.close()
    entries = ledger(datadir)
    copy = [e for e in entries if e["kind"] == "extract"][-1]
    assert copy["actor"] == "kacho" and json.loads(copy["detail"])["via"] == "test"
    refused = [e for e in entries if e["kind"] == "refused"][-1]
    assert refused["actor"] == "tanto" and json.loads(refused["detail"])["action"] == "download"
