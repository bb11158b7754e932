"""Erasure that survives flash remnants: day keys in a TPM (swtpm), attacked (issue 14 item 4).

The whole data directory is copied before a sweep — what flash wear
levelling may keep — then the sweep runs; afterwards no key file of the
copy opens for an erased call with the archive private key (unwrapped from
the copy's own wraps with the manager's password) and the TPM as the sweep
left it, while the held call of the same day still plays.
"""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from appliance.clock import SystemClock
from appliance.errors import KeyStoreError
from appliance.governance.retention import RetentionPolicy, Sweeper
from appliance.store.datadir import DataDir
from appliance.store.keystore import KeyStore, key_wrap

from tests._servers.tpm import SwTpm
from tests.attack._evidence import PASSWORD, build, calls, cli, db, staff, verify


@pytest.fixture
def tpm(tmp_path):
    t = SwTpm(tmp_path / "swtpm")
    yield t
    t.stop()


@pytest.fixture
def site(tmp_path, tpm):
    # with a TPM the device key lives in it too: no key file
    env = build(tmp_path / "site", f'[tpm]\ntcti = "{tpm.tcti}"\n')
    cfg = env["config"]
    cfg.write_text(cfg.read_text().split("[tpm]")[0].replace(
        f'[device]\nkey_file = "{env["root"] / "etc" / "device-key.pem"}"\n', "")
        + f'[tpm]\ntcti = "{tpm.tcti}"\n')
    return env


def test_device_key_in_the_tpm_signs_and_verifies(tmp_path, tpm):
    env = build(tmp_path / "s2", "")
    cfg = env["config"]
    cfg.write_text(f'[tpm]\ntcti = "{tpm.tcti}"\n')
    data = tmp_path / "s2" / "data2"
    code, out, err = cli("--data-dir", data, "--config", cfg, "init", "--manager", "kacho",
                         "--password-file", env["password_file"], "--recovery-key-file",
                         tmp_path / "r.txt")
    assert code == 0, err
    assert "TPM swtpm:" in out and "BEGIN PUBLIC KEY" in out
    code, out, err = cli("--data-dir", data, "--config", cfg, "run", "--fast",
                         "--demo-seconds", "2")
    assert code == 0, err
    code, report = verify({"data": data, "config": cfg})
    assert code == 0 and report["device_signed"], report["problems"]


def test_no_key_file_of_the_remnants_opens_an_erased_call_while_held_ones_play(site, tmp_path):
    env = site
    recorded = calls(env)
    assert len(recorded) == 3
    dd = DataDir(env["data"])
    for c in recorded:     # every data key is wrapped in its day's key in the TPM
        assert key_wrap((dd.keys.data_dir / f"{c['key_id']}.key").read_bytes())[0] == "day"
    held = recorded[1]
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "hold", "add",
                         held["id"], "--ground", "investigation", "--reference", "捜査照会1",
                         *staff(env))
    assert code == 0, err

    remnants = tmp_path / "remnants"
    shutil.copytree(env["data"], remnants)          # what the flash may still hold

    later = SystemClock().now() + timedelta(days=200)
    with dd.open_catalog(later) as catalog:
        result = Sweeper(dd, catalog, RetentionPolicy(), lambda: later).sweep()
    erased = {c["id"] for c in recorded} - {held["id"]}
    assert set(result.erased) == erased
    assert "day_keys_destroyed_through" in result.day_keys

    # the attacker: the remnant copy, the manager's password, the TPM as left
    copy = KeyStore(remnants / "keys")
    private = copy.unwrap_with_password("kacho", PASSWORD.encode())
    opened, tried = 0, 0
    for path in sorted((remnants / "keys" / "data").glob("*.key")):
        tried += 1
        try:
            copy.data_key(path.stem, private)
            opened += 1
        except KeyStoreError:
            pass
    assert tried == 3 and opened == 0     # not even the held call's old, day-wrapped copy
    for c in recorded:
        if c["id"] in erased:
            with pytest.raises(KeyStoreError):
                copy.data_key(c["key_id"], private)
    # the recovery key does no better
    recovery = (env["root"] / "etc" / "recovery.txt").read_text().strip()
    rec_private = copy.unwrap_with_recovery(recovery)
    for c in recorded:
        with pytest.raises(KeyStoreError):
            copy.data_key(c["key_id"], rec_private)

    # the held call of the same day still plays, re-wrapped under a hold key
    assert key_wrap((dd.keys.data_dir / f"{held['key_id']}.key").read_bytes())[0] == "hold"
    out = tmp_path / "held.opus"
    code, text, err = cli("--data-dir", env["data"], "--config", env["config"], "extract",
                          held["id"], "--out", out, "--ground", "investigation", "--reference",
                          "捜査照会1", *staff(env))
    assert code == 0, err
    assert out.read_bytes().startswith(b"OggS")
    code, report = verify(env)
    assert code == 0, report["problems"]


def test_erasing_a_hold_wrapped_record_destroys_its_hold_key(site, tmp_path):
    env = site
    recorded = calls(env)
    a, b = recorded[0], recorded[1]
    for c in (a, b):
        code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "hold", "add",
                             c["id"], "--ground", "investigation", "--reference", "照会2",
                             *staff(env))
        assert code == 0, err
    dd = DataDir(env["data"])
    later = SystemClock().now() + timedelta(days=200)
    with dd.open_catalog(later) as catalog:
        Sweeper(dd, catalog, RetentionPolicy(), lambda: later).sweep()
    slot_before = key_wrap((dd.keys.data_dir / f"{a['key_id']}.key").read_bytes())
    assert slot_before[0] == "hold"
    # a's hold is released; the next sweep erases it, and b moves to a fresh hold key
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "hold", "release",
                         a["id"], "--ground", "investigation", "--reference", "照会2 終結",
                         *staff(env))
    assert code == 0, err
    remnants = tmp_path / "remnants"
    shutil.copytree(env["data"], remnants)
    with dd.open_catalog(later) as catalog:
        result = Sweeper(dd, catalog, RetentionPolicy(), lambda: later).sweep()
    assert result.erased == [a["id"]]
    assert result.day_keys["hold_keys_destroyed"] == [slot_before[1]]
    copy = KeyStore(remnants / "keys")
    private = copy.unwrap_with_password("kacho", PASSWORD.encode())
    for c in (a, b):       # neither old hold-wrapped copy opens
        with pytest.raises(KeyStoreError):
            copy.data_key(c["key_id"], private)
    assert len(dd.keys.data_key(b["key_id"], private)) == 32     # b still plays


def test_without_a_tpm_the_appliance_says_erasure_is_not_certain(tmp_path):
    env = build(tmp_path / "site")
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "run", "--fast",
                         "--demo-seconds", "1")
    assert code == 0 and "no TPM fitted: erasure is NOT certain on flash" in err
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "status", "--json")
    assert code == 0, err
    import json
    status = json.loads(out)
    assert status["tpm_fitted"] is False and "NOT certain" in status["erasure"]


def test_resealing_to_a_city_key_keeps_the_day_wrap_and_is_pinned_in_the_ledger(site):
    """What enrolment to the city archive does (issue 15): re-seal, keep the TPM wrap, pin."""
    from nacl.public import PrivateKey
    from appliance.governance.keypins import pin_archive_key, read_pins
    env = site
    dd = DataDir(env["data"])
    private = dd.keys.unwrap_with_password("kacho", PASSWORD.encode())
    city = PrivateKey.generate()
    victim = calls(env)[0]
    before = dd.keys.data_key(victim["key_id"], private)
    dd.keys.reseal_data_key(victim["key_id"], private, city.public_key)
    assert key_wrap((dd.keys.data_dir / f"{victim['key_id']}.key").read_bytes())[0] == "day"
    assert dd.keys.data_key(victim["key_id"], city) == before
    with pytest.raises(KeyStoreError):
        dd.keys.data_key(victim["key_id"], private)
    with dd.open_catalog(SystemClock().now()) as catalog:
        pin_archive_key(catalog, bytes(city.public_key), SystemClock().now(), actor="kacho",
                        reference="登録第1号")
        assert read_pins(catalog).archive_key == bytes(city.public_key)
