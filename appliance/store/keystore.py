"""The key store: the archive key pair and one sealed data key per recording.

Layout under ``DATA_DIR/keys/``::

    archive.pub          the archive public key (X25519), in clear: the recorder
                         needs nothing else to write
    wraps.json           the archive private key, wrapped once per authorised
                         staff member (argon2id of their password) and once by
                         the recovery key printed at initialisation
    data/<key_id>.key    a recording's data key in a sealed box to archive.pub
    signing.pub          the appliance's Ed25519 export-signing public key (published)
    signing.sealed       its private seed, sealed to archive.pub: only staff who
                         unlock the archive key can sign, and a stolen appliance
                         cannot forge an export

Keeping data keys out of the recordings is what makes erasure certain (R8):
destroying ``data/<key_id>.key`` leaves the file's bytes undecryptable,
wherever flash wear-levelling left copies of them. Nothing here is ever
written in clear except the public key.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from datetime import date
from pathlib import Path

import nacl.pwhash.argon2id as argon2id
from nacl.encoding import RawEncoder
from nacl.exceptions import CryptoError
from nacl.hash import blake2b
from nacl.public import PrivateKey, PublicKey, SealedBox
from nacl.secret import SecretBox
from nacl.signing import SigningKey, VerifyKey

from appliance.errors import AuthError, KeyStoreError

RECOVERY_PERSON = b"acr-recovery-v1"[:16]


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write a small file so that a crash leaves the old or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def format_recovery_key(raw: bytes) -> str:
    text = base64.b32encode(raw).decode().rstrip("=")
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def parse_recovery_key(text: str) -> bytes:
    compact = "".join(ch for ch in text.upper() if ch.isalnum())
    try:
        raw = base64.b32decode(compact + "=" * (-len(compact) % 8))
    except (ValueError, base64.binascii.Error):
        raise AuthError("回復キーの形式が正しくありません / malformed recovery key") from None
    if len(raw) != 32:
        raise AuthError("回復キーの長さが正しくありません / recovery key has the wrong length")
    return raw


def _password_key(password: bytes, salt: bytes, ops: int, mem: int) -> bytes:
    return argon2id.kdf(SecretBox.KEY_SIZE, password, salt, opslimit=ops, memlimit=mem)


#: a data key (32 bytes) in a libsodium sealed box: ephemeral public key, MAC, ciphertext
SEALED_KEY_BYTES = 32 + 16 + 32
#: with a TPM the sealed box is wrapped again under a day or hold key (daykeys.py):
#: magic, kind (b"D" day ordinal / b"H" hold slot), 4-byte id, SecretBox(nonce, MAC, box)
WRAP_MAGIC = b"ACRK"
WRAPPED_KEY_BYTES = 4 + 1 + 4 + 24 + 16 + SEALED_KEY_BYTES


def wellformed_key_file(data: bytes) -> bool:
    if len(data) == SEALED_KEY_BYTES:
        return True
    return (len(data) == WRAPPED_KEY_BYTES and data.startswith(WRAP_MAGIC)
            and data[4:5] in (b"D", b"H"))


def key_wrap(data: bytes) -> tuple[str, int] | None:
    """('day', ordinal) or ('hold', slot) for a wrapped key file; None for a bare sealed box."""
    if len(data) == WRAPPED_KEY_BYTES and data.startswith(WRAP_MAGIC):
        return ("day" if data[4:5] == b"D" else "hold", int.from_bytes(data[5:9], "big"))
    return None


def wrap_key_file(sealed: bytes, kind: str, ident: int, kek: bytes) -> bytes:
    head = WRAP_MAGIC + (b"D" if kind == "day" else b"H") + ident.to_bytes(4, "big")
    return head + SecretBox(kek).encrypt(sealed, secrets.token_bytes(24))


class KeyStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"

    # --- archive key pair -----------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.root / "archive.pub").exists()

    def create_archive(self) -> PrivateKey:
        """A new archive key pair; returns the private key for wrapping (held in memory only)."""
        if self.initialised:
            raise KeyStoreError("the archive key pair already exists")
        private = PrivateKey.generate()
        atomic_write(self.root / "archive.pub", bytes(private.public_key), 0o644)
        atomic_write(self.root / "wraps.json", b'{"users": {}, "recovery": null}')
        return private

    def public_key(self) -> PublicKey:
        try:
            return PublicKey((self.root / "archive.pub").read_bytes())
        except FileNotFoundError:
            raise KeyStoreError("no archive public key: run 'appliance init' first") from None
        except (ValueError, TypeError):
            raise KeyStoreError("the archive public key is damaged") from None

    # --- wrapped private key --------------------------------------------------
    def _wraps(self) -> dict:
        try:
            return json.loads((self.root / "wraps.json").read_text())
        except FileNotFoundError:
            raise KeyStoreError("no wrapped archive keys: run 'appliance init' first") from None
        except ValueError:
            raise KeyStoreError("keys/wraps.json is damaged") from None

    def _save_wraps(self, wraps: dict) -> None:
        atomic_write(self.root / "wraps.json", json.dumps(wraps, sort_keys=True).encode())

    def wrap_for_user(self, name: str, password: bytes, private: PrivateKey,
                      ops: int = argon2id.OPSLIMIT_INTERACTIVE,
                      mem: int = argon2id.MEMLIMIT_INTERACTIVE) -> None:
        salt = secrets.token_bytes(argon2id.SALTBYTES)
        box = SecretBox(_password_key(password, salt, ops, mem))
        wraps = self._wraps()
        wraps["users"][name] = {
            "kdf": "argon2id", "salt": salt.hex(), "ops": ops, "mem": mem,
            "box": box.encrypt(bytes(private)).hex(),
        }
        self._save_wraps(wraps)

    def remove_user_wrap(self, name: str) -> None:
        wraps = self._wraps()
        if wraps["users"].pop(name, None) is not None:
            self._save_wraps(wraps)

    def has_user_wrap(self, name: str) -> bool:
        return name in self._wraps()["users"]

    def unwrap_with_password(self, name: str, password: bytes) -> PrivateKey:
        entry = self._wraps()["users"].get(name)
        if entry is None:
            raise AuthError(f"{name}: 鍵を持つ職員ではありません / holds no archive key")
        key = _password_key(password, bytes.fromhex(entry["salt"]), entry["ops"], entry["mem"])
        try:
            return PrivateKey(SecretBox(key).decrypt(bytes.fromhex(entry["box"])))
        except CryptoError:
            raise AuthError("パスワードが違います / wrong password") from None

    def wrap_for_recovery(self, private: PrivateKey) -> str:
        """Wrap with a fresh recovery key and return it formatted, to print once."""
        raw = secrets.token_bytes(32)
        box = SecretBox(blake2b(raw, digest_size=32, person=RECOVERY_PERSON,
                                encoder=RawEncoder))
        wraps = self._wraps()
        wraps["recovery"] = {"kdf": "blake2b", "box": box.encrypt(bytes(private)).hex()}
        self._save_wraps(wraps)
        return format_recovery_key(raw)

    def unwrap_with_recovery(self, text: str) -> PrivateKey:
        entry = self._wraps().get("recovery")
        if not entry:
            raise AuthError("回復キーが設定されていません / no recovery key is set")
        box = SecretBox(blake2b(parse_recovery_key(text), digest_size=32,
                                person=RECOVERY_PERSON, encoder=RawEncoder))
        try:
            return PrivateKey(box.decrypt(bytes.fromhex(entry["box"])))
        except CryptoError:
            raise AuthError("回復キーが違います / wrong recovery key") from None

    def pin_fingerprint(self, fp: str) -> None:
        """The archive public key's fingerprint, kept with the wraps (and in the ledger)."""
        wraps = self._wraps()
        wraps["archive_fingerprint"] = fp
        self._save_wraps(wraps)

    def pinned_fingerprint(self) -> str | None:
        return self._wraps().get("archive_fingerprint")

    # --- export signing key ----------------------------------------------------
    def create_signing_key(self) -> VerifyKey:
        if (self.root / "signing.pub").exists():
            raise KeyStoreError("the signing key already exists")
        key = SigningKey.generate()
        atomic_write(self.root / "signing.sealed", SealedBox(self.public_key()).encrypt(bytes(key)))
        atomic_write(self.root / "signing.pub", bytes(key.verify_key), 0o644)
        return key.verify_key

    def verify_key(self) -> VerifyKey:
        try:
            return VerifyKey((self.root / "signing.pub").read_bytes())
        except FileNotFoundError:
            raise KeyStoreError("no signing key: run 'appliance init'") from None

    def signing_key(self, private: PrivateKey) -> SigningKey:
        try:
            return SigningKey(SealedBox(private).decrypt((self.root / "signing.sealed").read_bytes()))
        except FileNotFoundError:
            raise KeyStoreError("no signing key: run 'appliance init'") from None
        except CryptoError:
            raise KeyStoreError("the signing key cannot be unsealed with this archive key") from None

    # --- the TPM's day and hold keys (daykeys.py) ------------------------------------
    def set_tpm(self, tcti: str) -> None:
        """Where the TPM is (``keys/tpm.json``, not secret): data keys get wrapped in its keys."""
        atomic_write(self.root / "tpm.json", json.dumps({"tcti": tcti}).encode(), 0o644)

    def day_keys(self):
        """The TPM's day keys, or None without a TPM (then erasure is overwrite-and-unlink)."""
        if getattr(self, "_day_keys", None) is None:
            try:
                tcti = json.loads((self.root / "tpm.json").read_text())["tcti"]
            except FileNotFoundError:
                return None
            except (ValueError, KeyError, TypeError):
                raise KeyStoreError("keys/tpm.json is damaged") from None
            from appliance.store.daykeys import DayKeys
            from appliance.store.tpm import Tpm
            self._day_keys = DayKeys(Tpm(tcti))
        return self._day_keys

    def store_data_key(self, key_id: str, sealed: bytes, day: date) -> None:
        """A new recording's sealed data key, wrapped under its day's key when a TPM is fitted."""
        dk = self.day_keys()
        if dk is not None:
            day = dk.live_day(day)
            sealed = wrap_key_file(sealed, "day", day.toordinal(), dk.day_key(day))
        atomic_write(self._data_key_path(key_id), sealed)

    def unwrap_file(self, data: bytes) -> bytes:
        """The sealed box inside a key file (TPM day or hold key), for the archive key to open."""
        wrap = key_wrap(data)
        if wrap is None:
            return data
        dk = self.day_keys()
        if dk is None:
            raise KeyStoreError("データ鍵は TPM の鍵で包まれていますが TPM が設定されていません / the "
                                "data key is wrapped by a TPM key, and no TPM is configured")
        kind, ident = wrap
        kek = dk.day_key(date.fromordinal(ident)) if kind == "day" else dk.hold_key(ident)
        try:
            return SecretBox(kek).decrypt(data[9:])
        except CryptoError:
            raise KeyStoreError("データ鍵を TPM の鍵で開けません / the data key does not open with "
                                "the TPM's key") from None

    def rewrap_for_hold(self, key_ids: list[str], slot: int, kek: bytes) -> None:
        """Re-wrap key files under a hold key (before their day or old slot is destroyed)."""
        for key_id in key_ids:
            path = self._data_key_path(key_id)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            atomic_write(path, wrap_key_file(self.unwrap_file(data), "hold", slot, kek))

    def reseal_data_key(self, key_id: str, private: PrivateKey, new_public: PublicKey) -> None:
        """Seal a data key to another archive key (enrolment to the city archive), keeping its
        day or hold wrap; the caller pins the new key in the ledger (keypins.pin_archive_key)."""
        path = self._data_key_path(key_id)
        data = path.read_bytes()
        try:
            key = SealedBox(private).decrypt(self.unwrap_file(data))
        except CryptoError:
            raise KeyStoreError(f"data key {key_id} cannot be unsealed") from None
        sealed = SealedBox(new_public).encrypt(key)
        wrap = key_wrap(data)
        if wrap is not None:
            dk = self.day_keys()
            kind, ident = wrap
            kek = dk.day_key(date.fromordinal(ident)) if kind == "day" else dk.hold_key(ident)
            sealed = wrap_key_file(sealed, kind, ident, kek)
        atomic_write(path, sealed)

    def key_wrap_of(self, key_id: str) -> tuple[str, int] | None:
        try:
            return key_wrap(self._data_key_path(key_id).read_bytes())
        except FileNotFoundError:
            return None

    # --- data keys --------------------------------------------------------------
    def new_data_key(self, day: date | None = None) -> tuple[str, bytes]:
        """A fresh data key, stored sealed; returns (key_id, key) for the recorder."""
        key_id = secrets.token_hex(12)
        key = secrets.token_bytes(32)
        sealed = SealedBox(self.public_key()).encrypt(key)
        if day is None:       # tools and tests: no recording day, no TPM wrap
            atomic_write(self._data_key_path(key_id), sealed)
        else:                 # the day is the caller's (no clock below the front ends)
            self.store_data_key(key_id, sealed, day)
        return key_id, key

    def data_key(self, key_id: str, private: PrivateKey) -> bytes:
        path = self._data_key_path(key_id)
        try:
            sealed = path.read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"data key {key_id} is gone (erased or lost)") from None
        try:
            return SealedBox(private).decrypt(self.unwrap_file(sealed))
        except CryptoError:
            raise KeyStoreError(f"data key {key_id} cannot be unsealed") from None

    def data_key_state(self, key_id: str) -> str:
        """'present', 'missing' or 'damaged' (not a sealed key's shape); needs no key."""
        try:
            data = self._data_key_path(key_id).read_bytes()
        except (FileNotFoundError, KeyStoreError):
            return "missing"
        return "present" if wellformed_key_file(data) else "damaged"

    def has_data_key(self, key_id: str) -> bool:
        return self._data_key_path(key_id).exists()

    def destroy_data_key(self, key_id: str) -> bool:
        """Overwrite then unlink a data key; True if it existed."""
        path = self._data_key_path(key_id)
        try:
            fd = os.open(path, os.O_WRONLY)
        except FileNotFoundError:
            return False
        try:
            size = os.fstat(fd).st_size
            os.write(fd, secrets.token_bytes(size))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(path)
        return True

    def _data_key_path(self, key_id: str) -> Path:
        if not key_id or not all(c in "0123456789abcdef" for c in key_id):
            raise KeyStoreError(f"invalid key id {key_id!r}")
        return self.data_dir / f"{key_id}.key"

