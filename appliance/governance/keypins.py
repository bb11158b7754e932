"""Keys pinned by the ledger: the archive public key and the device key (R9, R16).

``appliance init`` writes the archive public key itself (32 bytes, hex) and
its fingerprint, the device public key and the export-signing key's
fingerprint into the ledger's first entry (初期設定). The recorder seals new
data keys to the *pinned* archive key, whatever ``keys/archive.pub`` says:
a swapped ``archive.pub`` is refused with an alarm instead of silently
sealing every new call to an attacker's key, and ``verify`` reports it.

The pinned archive key changes only through an explicit, ledgered step
(鍵の登録, ``pin_archive_key``): the city archive's enrolment re-seals to
the city key and pins it there. The latest INIT or KEY entry wins; the
chain and its RFC 3161 tokens keep those entries from being rewritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from nacl.public import PublicKey

from appliance.errors import KeyStoreError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir


class KeyPinError(KeyStoreError):
    """A key in the data directory is not the one the ledger pinned."""


def fingerprint(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Pins:
    archive_key: bytes | None          # 32 raw bytes (X25519)
    device_pem: bytes | None           # the device public key (PEM), None = none configured
    entry_seq: int | None              # the entry that pinned the archive key

    @property
    def archive_fingerprint(self) -> str | None:
        return fingerprint(self.archive_key) if self.archive_key else None


def init_detail(dd: DataDir, manager: str, device_pem: bytes | None) -> dict:
    """What the 初期設定 entry pins (called once the keys exist)."""
    archive = bytes(dd.keys.public_key())
    detail = {"manager": manager, "archive_key": archive.hex(),
              "archive_fingerprint": fingerprint(archive),
              "signing_fingerprint": fingerprint(bytes(dd.keys.verify_key()))}
    if device_pem is not None:
        from appliance.store.devicekey import fingerprint as device_fp
        detail.update(device_key=device_pem.decode(), device_fingerprint=device_fp(device_pem))
    return detail


def read_pins(catalog: Catalog) -> Pins:
    archive = device = seq = None
    for s, kind, detail in catalog.conn.execute(
            "SELECT seq, kind, detail FROM ledger WHERE kind IN (?, ?) ORDER BY seq",
            (str(EntryKind.INIT), str(EntryKind.KEY))):
        try:
            d = json.loads(detail)
        except ValueError:
            continue
        if d.get("archive_key"):
            try:
                archive, seq = bytes.fromhex(d["archive_key"]), s
            except (ValueError, TypeError):
                pass
        if d.get("device_key"):
            device = str(d["device_key"]).encode()
    return Pins(archive, device, seq)


def sealing_key(dd: DataDir, catalog: Catalog) -> tuple[PublicKey, str | None]:
    """The key to seal new data keys to, and a problem to alarm about (or None).

    The pinned key when there is one; ``keys/archive.pub`` only for a data
    directory initialised before pinning existed (none in the field)."""
    pins = read_pins(catalog)
    on_disk = None
    try:
        on_disk = bytes(dd.keys.public_key())
    except KeyStoreError:
        pass
    if pins.archive_key is None:
        if on_disk is None:
            raise KeyPinError("保管鍵がありません / no archive public key")
        return PublicKey(on_disk), None
    problem = None
    if on_disk != pins.archive_key:
        problem = ("keys/archive.pub が管理簿に登録された保管鍵と異なります。登録済みの鍵で封印を続けます / "
                   "keys/archive.pub differs from the archive key pinned in the ledger "
                   f"(entry #{pins.entry_seq}): sealing to the pinned key instead")
    return PublicKey(pins.archive_key), problem


def pin_archive_key(catalog: Catalog, new_public: bytes, at: datetime, *, actor: str,
                    reference: str, detail: dict | None = None) -> dict:
    """鍵の登録: pin a new archive public key (enrolment to the city archive)."""
    if len(new_public) != 32:
        raise KeyPinError("保管鍵は32バイトです / an archive public key has 32 bytes")
    return Ledger(catalog).append(
        EntryKind.KEY, at, actor=actor, reference=reference,
        detail=dict(detail or {}, archive_key=new_public.hex(),
                    archive_fingerprint=fingerprint(new_public)))
