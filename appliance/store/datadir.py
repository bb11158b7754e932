"""The data directory: catalog, key store and recordings, in one place.

::

    DATA_DIR/catalog.sqlite       calls, users, ledger (WAL)
    DATA_DIR/keys/                archive public key, wrapped private keys, data keys
    DATA_DIR/recordings/YYYY/MM/DD/<call id>.acr   sealed recordings
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from appliance.errors import DataDirError
from appliance.store.catalog import TOKYO, Catalog
from appliance.store.keystore import KeyStore

RECORDING_SUFFIX = ".acr"


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog_path = root / "catalog.sqlite"
        self.keys = KeyStore(root / "keys")
        self.recordings = root / "recordings"

    @property
    def initialised(self) -> bool:
        return self.catalog_path.exists() and self.keys.initialised

    def require(self) -> None:
        if not self.root.is_dir():
            raise DataDirError(f"{self.root}: データディレクトリがありません / no such data directory")
        if not self.initialised:
            raise DataDirError(
                f"{self.root}: 初期設定されていません / not initialised: run 'appliance init'")

    def open_catalog(self, now: datetime, *, create: bool = False) -> Catalog:
        if not create:
            self.require()
        return Catalog.open(self.catalog_path, now, create=create)

    def recording_relpath(self, call_id: str, started_at: datetime) -> str:
        local = started_at.astimezone(TOKYO)
        return f"recordings/{local:%Y/%m/%d}/{call_id}{RECORDING_SUFFIX}"

    def path_of(self, relpath: str) -> Path:
        path = (self.root / relpath).resolve()
        if self.root.resolve() not in path.parents:
            raise DataDirError(f"recording path {relpath!r} leaves the data directory")
        return path

    # --- is a recorder running? -------------------------------------------------------
    @contextlib.contextmanager
    def recorder_lock(self) -> Iterator[None]:
        """Held by ``appliance run`` for its whole life (an flock the kernel drops with the
        process, even on kill -9): ``verify`` tells rows being recorded from rows a dead
        recorder left ``recording``."""
        fd = os.open(self.root / "recorder.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DataDirError(f"{self.root}: 録音装置は既に動いています / a recorder already "
                                   "runs on this data directory") from None
            yield
        finally:
            os.close(fd)

    def recorder_running(self) -> bool:
        try:
            fd = os.open(self.root / "recorder.lock", os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
