"""Initialising the centre: the city archive key pair, the first 管理責任者, the city CA.

As on an appliance (appliance.governance.setup) the archive private key
exists only in memory here: it leaves wrapped with the manager's password
(in PostgreSQL) and with a fresh recovery key, returned once for the safe.
"""

from __future__ import annotations

from appliance.central.ca import CityCA
from appliance.central.centre import Centre
from appliance.errors import DataDirError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import Role, add_user


def initialise_centre(centre: Centre, manager: str, password: bytes) -> str:
    """Keys, CA and the manager; returns the recovery key (show it once)."""
    d = centre.dir
    if d.initialised:
        raise DataDirError(f"{d.root}: 初期設定済みです / the centre is already initialised")
    now = centre.clock.now()
    d.root.mkdir(parents=True, exist_ok=True)
    for sub in (d.incoming, d.exports, d.store):
        sub.mkdir(parents=True, exist_ok=True)
    with centre.catalog() as cat:
        if cat.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0]:
            raise DataDirError("センターのデータベースに既に利用者がいます / the centre's database "
                               "already has users: use an empty database")
        with cat.transaction():
            add_user(cat, manager, Role.MANAGER, password, now)
            private = d.keys.create_archive()
            d.keys.wrap_for_user(manager, password, private)
            recovery = d.keys.wrap_for_recovery(private)
            d.keys.create_signing_key()
            del private
            CityCA(d.ca_dir).create(centre.settings.public_host, now)
            Ledger(cat).append(EntryKind.INIT, now, actor=manager,
                               detail={"manager": manager, "what": "city archive centre"})
    return recovery
