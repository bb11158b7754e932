"""The centre's files and keys, in the shape the governance code expects of a data directory.

::

    CENTRE_DIR/keys/archive.pub        the city archive public key (every enrolled site has it)
    CENTRE_DIR/keys/signing.pub|.sealed  the city's export-signing key (sealed to the archive key)
    CENTRE_DIR/keys/data/<key id>.key  each recording's data key, sealed to the city key
    CENTRE_DIR/ca/                     the city CA (issues the sites' client certificates)
    CENTRE_DIR/incoming/<site>/<call id>.part   files still arriving
    STORE/sha256/ab/cd/<sha256>.acr    verified sealed files, content-addressed
                                       (STORE = [central] store_dir, a NAS mount; default
                                       CENTRE_DIR/store)
    CENTRE_DIR/exports/                bundles made at the centre

The archive private key's wraps live in PostgreSQL (``key_wraps``), so the
centre's staff and their keys are one list with its users. Data keys stay in
files on the centre's own disk — never in PostgreSQL, whose WAL and backups
would keep a copy after erasure — and erasure overwrites and unlinks them as
on the appliance (docs/central.md: keep ``keys/`` out of backups).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from appliance.errors import DataDirError, KeyStoreError
from appliance.store.keystore import KeyStore

STORE_PREFIX = "store/"
RECOVERY = ""       # the recovery wrap's row in key_wraps


class CentreKeyStore(KeyStore):
    """The appliance key store, with the wrapped private key in PostgreSQL."""

    def __init__(self, root: Path, connect: Callable[[], AbstractContextManager]) -> None:
        super().__init__(root)
        self._connect = connect

    def create_archive(self):
        if self.initialised:
            raise KeyStoreError("the archive key pair already exists")
        from nacl.public import PrivateKey
        from appliance.store.keystore import atomic_write
        private = PrivateKey.generate()
        atomic_write(self.root / "archive.pub", bytes(private.public_key), 0o644)
        return private

    def _wraps(self) -> dict:
        with self._connect() as conn:
            rows = conn.execute("SELECT name, wrap FROM key_wraps").fetchall()
        wraps: dict = {"users": {}, "recovery": None}
        for name, wrap in rows:
            if name == RECOVERY:
                wraps["recovery"] = json.loads(wrap)
            else:
                wraps["users"][name] = json.loads(wrap)
        return wraps

    def _save_wraps(self, wraps: dict) -> None:
        want = {name: json.dumps(w, sort_keys=True) for name, w in wraps["users"].items()}
        if wraps.get("recovery"):
            want[RECOVERY] = json.dumps(wraps["recovery"], sort_keys=True)
        with self._connect() as conn, conn.transaction():
            have = {r[0] for r in conn.execute("SELECT name FROM key_wraps")}
            for name in have - set(want):
                conn.execute("DELETE FROM key_wraps WHERE name = %s", (name,))
            for name, wrap in want.items():
                conn.execute("INSERT INTO key_wraps VALUES (%s, %s) ON CONFLICT (name) DO UPDATE"
                             " SET wrap = excluded.wrap", (name, wrap))

    def put_data_key(self, key_id: str, sealed: bytes) -> None:
        """A data key sealed to the city key, as a site sent it (idempotent)."""
        from appliance.store.keystore import atomic_write
        path = self._data_key_path(key_id)
        if path.exists() and path.read_bytes() == sealed:
            return
        atomic_write(path, sealed)


class CentreDir:
    """The centre's directory; ``keys`` and ``path_of`` as the governance code uses them."""

    def __init__(self, root: Path, connect: Callable[[], AbstractContextManager],
                 store_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.keys = CentreKeyStore(self.root / "keys", connect)
        self.store = Path(store_dir) if store_dir else self.root / "store"
        self.incoming = self.root / "incoming"
        self.ca_dir = self.root / "ca"
        self.exports = self.root / "exports"

    @property
    def initialised(self) -> bool:
        return self.keys.initialised

    def require(self) -> None:
        if not self.initialised:
            raise DataDirError(f"{self.root}: センターが初期設定されていません / the centre is not "
                               "initialised: run 'appliance central init'")

    def store_relpath(self, sha256: str) -> str:
        return f"{STORE_PREFIX}sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}.acr"

    def path_of(self, relpath: str) -> Path:
        if relpath.startswith(STORE_PREFIX):
            base, rest = self.store, relpath[len(STORE_PREFIX):]
        else:
            base, rest = self.root, relpath
        path = (base / rest).resolve()
        if base.resolve() not in path.parents:
            raise DataDirError(f"recording path {relpath!r} leaves the centre's store")
        return path

    def incoming_path(self, site: str, call_id: str) -> Path:
        if "/" in call_id or call_id.startswith("."):
            raise DataDirError(f"invalid call id {call_id!r}")
        return self.incoming / site / f"{call_id}.part"

    def fsync_dir(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
