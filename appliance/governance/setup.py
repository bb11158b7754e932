"""Initialising a data directory: the archive key pair and the first 管理責任者.

Used by ``appliance init`` and by the serial console's ``init`` on first boot.
The archive private key exists only in memory here: it leaves wrapped with
the manager's password and with a fresh recovery key, which is returned once
for printing and is stored nowhere in clear.
"""

from __future__ import annotations

from datetime import datetime

from appliance.errors import DataDirError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import Role, add_user
from appliance.governance.keypins import init_detail
from appliance.store.datadir import DataDir
from appliance.store.keystore import atomic_write


def initialise(dd: DataDir, manager: str, password: bytes, now: datetime,
               actor: str | None = None, device_pem: bytes | None = None) -> str:
    """Create the catalog, keys and the manager; returns the recovery key (show it once).

    ``device_pem``: the device key's public half (devicekey.py), made by the
    front end from the configuration; kept as ``keys/device.pub`` and pinned
    in the first ledger entry with the archive and signing keys (keypins.py)."""
    if dd.initialised:
        raise DataDirError(f"{dd.root}: 初期設定済みです / already initialised")
    dd.root.mkdir(parents=True, exist_ok=True)
    with dd.open_catalog(now, create=True) as catalog:
        add_user(catalog, manager, Role.MANAGER, password, now)
        private = dd.keys.create_archive()
        dd.keys.wrap_for_user(manager, password, private)
        recovery = dd.keys.wrap_for_recovery(private)
        dd.keys.create_signing_key()
        del private
        if device_pem is not None:
            atomic_write(dd.keys.root / "device.pub", device_pem, 0o644)
        detail = init_detail(dd, manager, device_pem)
        dd.keys.pin_fingerprint(detail["archive_fingerprint"])
        Ledger(catalog).append(EntryKind.INIT, now, actor=actor or manager, detail=detail)
    return recovery
