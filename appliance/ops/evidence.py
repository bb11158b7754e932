"""The evidence settings (``[tpm]``, ``[device]``, ``[timestamp]``) and what they open.

::

    [tpm]
    tcti = "device:/dev/tpmrm0"   # the TPM 2.0 (absent: no TPM fitted)

    [device]
    key_file = "/etc/appliance/device-key.pem"   # only without a TPM: root-only, off the
                                                 # data partition; with a TPM the key is in it

    [timestamp]
    url = "http://tsa.example.lg.jp/tsa"         # RFC 3161 time-stamping authority
    ca_file = "/etc/appliance/tsa-ca.pem"        # its CA (and chain): tokens are checked against it
    interval_minutes = 10                        # the ledger head is stamped this often while entries arrive
    timeout_s = 10

Read by the front ends only (``init``, ``run``, ``verify``, ``status``, ``export``);
the layers below get the objects built here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ApplianceError, ConfigError

_KEYS = {"tpm": {"tcti"}, "device": {"key_file"},
         "timestamp": {"url", "ca_file", "interval_minutes", "timeout_s"}}

NO_TPM_JA = ("TPM がありません: 消去はフラッシュ上で確実ではありません (データ鍵の上書きと削除のみ。"
             "フラッシュに残った旧ブロックは保管鍵で開けます) / no TPM fitted: erasure is NOT certain "
             "on flash (data keys are overwritten and unlinked only; old copies of their blocks "
             "still open with the archive key)")


@dataclass(frozen=True)
class EvidenceSettings:
    tcti: str | None = None
    key_file: Path | None = None
    tsa_url: str | None = None
    tsa_ca: Path | None = None
    interval_minutes: float = 10.0
    timeout_s: float = 10.0

    @classmethod
    def from_config(cls, config) -> "EvidenceSettings":
        raw = config.raw
        base = config.source.parent if config.source is not None else Path.cwd()
        for table, keys in _KEYS.items():
            value = raw.get(table, {})
            if not isinstance(value, dict):
                raise ConfigError(f"[{table}] must be a table")
            unknown = set(value) - keys
            if unknown:
                raise ConfigError(f"[{table}] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        tpm, dev, ts = raw.get("tpm", {}), raw.get("device", {}), raw.get("timestamp", {})

        def text(table: str, t: dict, key: str) -> str | None:
            v = t.get(key)
            if v is not None and (not isinstance(v, str) or not v or len(v) > 1024):
                raise ConfigError(f"[{table}] {key} must be a non-empty string")
            return v

        def path(table: str, t: dict, key: str) -> Path | None:
            v = text(table, t, key)
            return None if v is None else (base / v if not Path(v).is_absolute() else Path(v))

        def number(key: str, default: float, lo: float, hi: float) -> float:
            v = ts.get(key, default)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
                raise ConfigError(f"[timestamp] {key} must be a number {lo}–{hi}")
            return float(v)

        url = text("timestamp", ts, "url")
        if url is not None and not url.startswith(("http://", "https://")):
            raise ConfigError("[timestamp] url must be http:// or https://")
        return cls(tcti=text("tpm", tpm, "tcti"), key_file=path("device", dev, "key_file"),
                   tsa_url=url, tsa_ca=path("timestamp", ts, "ca_file"),
                   interval_minutes=number("interval_minutes", 10.0, 0.05, 24 * 60),
                   timeout_s=number("timeout_s", 10.0, 0.5, 120.0))

    def tpm(self):
        """The TPM, or None when none is configured (fitted)."""
        if not self.tcti:
            return None
        from appliance.store.tpm import Tpm
        return Tpm(self.tcti)

    def device_key(self, data_root: Path, *, create: bool = False):
        """The device signer (TPM first, else the key file), or None when neither is configured."""
        from appliance.store.devicekey import FileDeviceKey, TpmDeviceKey
        tpm = self.tpm()
        if self.key_file is not None:
            return (FileDeviceKey.create(self.key_file, data_root) if create
                    else FileDeviceKey(self.key_file))
        if tpm is not None:
            return TpmDeviceKey.create(tpm) if create else TpmDeviceKey(tpm)
        return None

    def stamper(self):
        """The time-stamping client, or None without ``[timestamp] url``."""
        if not self.tsa_url:
            return None
        from appliance.governance.timestamps import TsaClient
        return TsaClient(self.tsa_url, self.timeout_s)


def capture_sealer(settings: EvidenceSettings, dd, catalog, monotonic, now):
    """The writer's statement signer, and what to alarm about (a list of texts).

    No device key configured and none pinned: None, nothing to say (a bench or
    a test without one). A key pinned at init but not available now, or not
    the pinned one: recording goes on unsigned, with an alarm."""
    from appliance.governance.keypins import read_pins
    from appliance.store import devicekey
    from appliance.store.statements import CaptureSealer
    pins = read_pins(catalog)
    try:
        signer = settings.device_key(dd.root)
    except ApplianceError as exc:
        return None, [f"装置鍵を開けません / cannot open the device key: {exc}"]
    if signer is None:
        if pins.device_pem is not None:
            return None, ["装置鍵が設定されていません ([device] key_file / [tpm] tcti) / no device "
                          "key configured, but one was pinned at init: recordings are not signed"]
        return None, []
    pem = signer.public_pem()
    if pins.device_pem is not None and devicekey.fingerprint(pem) != devicekey.fingerprint(
            pins.device_pem):
        return None, ["装置鍵が初期設定時の鍵と異なります / the device key is not the one pinned "
                      "at init: recordings are not signed"]
    return CaptureSealer(catalog, signer, devicekey.fingerprint(pem), monotonic, now), []


class Timestamping:
    """Stamps the ledger (and export manifests) at the TSA; a failure is an alarm, never a stop.

    Used by the recorder (a thread stamping every ``interval_minutes`` while
    entries arrive, and once at stop) and by ``export`` (the manifest's token
    and the ledger head right after). Each use opens its own catalog
    connection: it runs in its own thread."""

    def __init__(self, settings: EvidenceSettings, dd, now) -> None:
        self.client = settings.stamper()
        self.interval_s = settings.interval_minutes * 60.0
        self.dd = dd
        self.now = now
        self._stop = None
        self._thread = None
        self.tokens = 0
        self.failures = 0

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def _alarm(self, catalog, problem: str | None) -> int:
        """Raise or clear the alarm; how many were cleared (a clearing is a ledger entry)."""
        from appliance.ops.alarms import AlarmCode, AlarmRegistry
        registry = AlarmRegistry(catalog, self.now)
        if problem:
            registry.raise_(AlarmCode.TIMESTAMP_FAILED, "", problem)
            return 0
        return registry.clear(AlarmCode.TIMESTAMP_FAILED)

    def stamp_ledger(self, reason: str, catalog=None) -> dict | None:
        from appliance.governance.timestamps import TimestampError, stamp_ledger
        if self.client is None:
            return None
        own = catalog is None
        catalog = catalog or self.dd.open_catalog(self.now())
        try:
            try:
                entry = stamp_ledger(catalog, self.client, self.now(), reason=reason)
            except TimestampError as exc:
                self.failures += 1
                logging.getLogger(__name__).error("ledger not time-stamped: %s", exc)
                self._alarm(catalog, str(exc))
                return None
            if entry is not None:
                self.tokens += 1
            if self._alarm(catalog, None):
                # the clearing is itself an entry: stamp it too (once; bounded)
                try:
                    again = stamp_ledger(catalog, self.client, self.now(), reason=reason)
                except TimestampError:
                    again = None          # the next interval covers it
                if again is not None:
                    self.tokens += 1
                    entry = again
            return entry
        finally:
            if own:
                catalog.close()

    def manifest_token(self, digest: bytes, catalog) -> bytes | None:
        """A token over an export's manifest, or None (alarmed) when the TSA fails."""
        from appliance.governance.timestamps import TimestampError
        if self.client is None:
            return None
        try:
            token = self.client.stamp(digest)
        except TimestampError as exc:
            self.failures += 1
            self._alarm(catalog, str(exc))
            return None
        return token

    # --- the recorder's thread -----------------------------------------------------------
    def start(self) -> "Timestamping":
        import threading
        if self.client is None:
            return self
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="appliance-timestamp", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.stamp_ledger("interval")
            except Exception:          # noqa: BLE001 — logged; the recorder goes on
                logging.getLogger(__name__).exception("time-stamping failed")

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=self.client.timeout_s * 2 + 5)
        self._thread = None
        try:
            self.stamp_ledger("recorder stop")
        except Exception:              # noqa: BLE001 — shutting down: logged
            logging.getLogger(__name__).exception("final time-stamp failed")
