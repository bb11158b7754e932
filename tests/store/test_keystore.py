"""The key store: wrapped archive key, recovery key, data keys, nothing in clear."""

from __future__ import annotations

import pytest

from appliance.errors import AuthError, KeyStoreError
from appliance.store.keystore import KeyStore, format_recovery_key, parse_recovery_key


@pytest.fixture
def store(tmp_path):
    ks = KeyStore(tmp_path / "keys")
    private = ks.create_archive()
    ks.wrap_for_user("kacho", b"correct horse", private)
    recovery = ks.wrap_for_recovery(private)
    return ks, private, recovery


def test_password_unwraps_and_wrong_password_fails(store):
    ks, private, _ = store
    assert bytes(ks.unwrap_with_password("kacho", b"correct horse")) == bytes(private)
    with pytest.raises(AuthError, match="wrong password"):
        ks.unwrap_with_password("kacho", b"wrong horse")
    with pytest.raises(AuthError):
        ks.unwrap_with_password("nobody", b"correct horse")


def test_recovery_key_unwraps_and_wrong_one_fails(store):
    ks, private, recovery = store
    assert bytes(ks.unwrap_with_recovery(recovery)) == bytes(private)
    # lower case and other separators are accepted as typed from paper
    assert bytes(ks.unwrap_with_recovery(recovery.lower().replace("-", " "))) == bytes(private)
    other = format_recovery_key(bytes(32))
    with pytest.raises(AuthError, match="wrong recovery key"):
        ks.unwrap_with_recovery(other)
    with pytest.raises(AuthError, match="malformed"):
        ks.unwrap_with_recovery("0000-1111-8888")
    with pytest.raises(AuthError, match="wrong length"):
        ks.unwrap_with_recovery("ABCD-EFGH")


def test_recovery_key_format_round_trips():
    raw = bytes(range(32))
    assert parse_recovery_key(format_recovery_key(raw)) == raw


def test_no_secret_in_clear_on_disk(store, tmp_path):
    ks, private, recovery = store
    key_id, data_key = ks.new_data_key()
    secrets_ = [bytes(private), data_key, bytes(private).hex().encode(), data_key.hex().encode(),
                b"correct horse", recovery.encode()]
    for path in (tmp_path / "keys").rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            for s in secrets_:
                assert s not in blob, path


def test_data_key_needs_the_private_key_and_erasure_destroys_it(store):
    ks, private, _ = store
    key_id, data_key = ks.new_data_key()
    assert ks.data_key(key_id, private) == data_key
    sealed_copy = (ks.data_dir / f"{key_id}.key").read_bytes()
    assert ks.destroy_data_key(key_id)
    assert not ks.has_data_key(key_id)
    with pytest.raises(KeyStoreError, match="gone"):
        ks.data_key(key_id, private)
    assert not any(sealed_copy in p.read_bytes() for p in ks.root.rglob("*") if p.is_file())
    assert not ks.destroy_data_key(key_id)     # idempotent


def test_removed_staff_wrap_no_longer_unlocks(store):
    ks, _, _ = store
    ks.remove_user_wrap("kacho")
    with pytest.raises(AuthError):
        ks.unwrap_with_password("kacho", b"correct horse")


def test_key_ids_cannot_escape_the_store(store):
    ks, private, _ = store
    with pytest.raises(KeyStoreError):
        ks.data_key("../../etc/passwd", private)


def test_archive_is_created_once(store):
    ks, _, _ = store
    with pytest.raises(KeyStoreError):
        ks.create_archive()


def test_signing_key_is_sealed_and_needs_the_archive_key(store):
    ks, private, _ = store
    verify = ks.create_signing_key()
    signer = ks.signing_key(private)
    assert signer.verify_key == verify == ks.verify_key()
    assert bytes(signer) not in (ks.root / "signing.sealed").read_bytes()
    from nacl.public import PrivateKey
    with pytest.raises(KeyStoreError):
        ks.signing_key(PrivateKey.generate())
