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
from appliance.store.datadir import DataDir


def initialise(dd: DataDir, manager: str, password: bytes, now: datetime,
               actor: str | None = None) -> str:
    """Create the catalog, keys and the manager; returns the recovery key (show it once)."""
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
        Ledger(catalog).append(EntryKind.INIT, now, actor=actor or manager,
                               detail={"manager": manager})
    return recovery
