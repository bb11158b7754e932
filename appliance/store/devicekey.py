"""The per-appliance device key: ECDSA P-256, signing capture statements (R9, R16).

Two homes, chosen by the configuration (``[device]``):

- ``tpm``: a key made inside the TPM 2.0 (fixedtpm: it never leaves the
  chip) at a persistent handle; each signature is the TPM's. Someone with
  root on the running appliance can ask the TPM to sign, but nobody can
  copy the key off the board or sign anywhere else.
- ``key_file``: a PKCS#8 PEM file owned by root, mode 0600, outside the data
  partition (``/etc/appliance/device-key.pem``), read once by the recorder
  at start. The web service (its own user) and staff cannot read it; root
  can, and so can whoever holds the root file system.

The public half is kept in the data directory (``keys/device.pub``) for
``verify``, pinned by its fingerprint in the ledger's first entry, and
printed by ``appliance init`` for the city to keep. The fingerprint is the
SHA-256 of the key's DER SubjectPublicKeyInfo (``openssl pkey -pubin
-outform DER | sha256sum``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from appliance.errors import KeyStoreError
from appliance.store.tpm import DEVICE_KEY_HANDLE, Tpm


class DeviceKeyError(KeyStoreError):
    """The device key is missing, unreadable, or not where it may be."""


def fingerprint(public_pem: bytes) -> str:
    key = load_public(public_pem)
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def load_public(public_pem: bytes) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError):
        raise DeviceKeyError("装置鍵の公開鍵が壊れています / the device public key is damaged") \
            from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise DeviceKeyError("装置鍵は ECDSA P-256 ではありません / the device key is not P-256")
    return key


def verify(public: ec.EllipticCurvePublicKey, message: bytes, signature: bytes) -> bool:
    try:
        public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        return False


class FileDeviceKey:
    """The device key in a root-only file (no TPM fitted)."""

    kind = "file"

    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
            key = serialization.load_pem_private_key(data, password=None)
        except FileNotFoundError:
            raise DeviceKeyError(f"{path}: 装置鍵がありません / no device key (appliance init "
                                 "creates it)") from None
        except PermissionError:
            raise DeviceKeyError(f"{path}: 装置鍵を読めません / cannot read the device key "
                                 "(root only)") from None
        except (ValueError, TypeError):
            raise DeviceKeyError(f"{path}: 装置鍵が壊れています / the device key is damaged") \
                from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise DeviceKeyError(f"{path}: 装置鍵は ECDSA P-256 ではありません / not a P-256 key")
        self._key = key
        self.where = str(path)

    @classmethod
    def create(cls, path: Path, data_root: Path) -> "FileDeviceKey":
        """A new key at ``path`` (kept if it exists: the device keeps its identity)."""
        path = Path(path)
        if path.resolve().is_relative_to(Path(data_root).resolve()):
            raise DeviceKeyError(f"{path}: 装置鍵はデータ領域の外に置いてください / the device key "
                                 "must live outside the data directory")
        if not path.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            if not path.parent.is_dir():
                raise DeviceKeyError(f"{path.parent}: フォルダがありません / no such directory")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
        return cls(path)

    def public_pem(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message, ec.ECDSA(hashes.SHA256()))


class TpmDeviceKey:
    """The device key inside the TPM; the private half never leaves it."""

    kind = "tpm"

    def __init__(self, tpm: Tpm, handle: int = DEVICE_KEY_HANDLE) -> None:
        self.tpm = tpm
        self.handle = handle
        self._public = tpm.public_pem(handle)   # also: the key exists
        self.where = f"TPM {tpm.tcti} 0x{handle:x}"

    @classmethod
    def create(cls, tpm: Tpm, handle: int = DEVICE_KEY_HANDLE) -> "TpmDeviceKey":
        if not tpm.has_persistent(handle):
            tpm.create_signing_key(handle)
        return cls(tpm, handle)

    def public_pem(self) -> bytes:
        return self._public

    def sign(self, message: bytes) -> bytes:
        return self.tpm.sign(message, self.handle)
