"""``appliance verify``: the catalog, the files, the data keys and the ledger, reconciled (R9, R14).

No key is needed and nothing secret is shown. Every call is held to the
ledger's RECORD entry written when it was closed (binding.py), to the
device's signed capture statements (statements.py), and to its file;
the ledger both ways:

- every catalog row has its RECORD entry, and their key id, size, SHA-256,
  duration and the digest of its times and numbers agree;
- every RECORD entry has its row (and file) or a 廃棄 entry; a row marked
  ``erased`` has its 廃棄 entry;
- every file matches the size and SHA-256 the ledger bound, names its own
  call and key, is closed when the row says complete, and is what the
  device signed (a cut file up to its last signed length);
- every data key is present and well-formed;
- the chain itself holds, and the archive, device and wrap pins agree.

Findings that are problems: ``altered`` (bytes differ from what was bound
or signed), ``mismatch`` (catalog and ledger disagree), ``missing`` (a file
or a row is gone), ``cut`` (a file shorter than recorded, unexplained),
``unsigned`` (no device signature holds for the file), ``data_key``,
``chain`` (chain broken at N), ``key`` (a pinned key differs), ``stale`` (a
row left ``recording`` while no recorder runs). Not problems: ``intact``,
``truncated`` (cut by a crash and closed by the recovery, which the ledger
says), ``recording`` (while the recorder runs), ``erased``, ``metadata`` (a
row without audio).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

from appliance.errors import ApplianceError, KeyStoreError, SealedFileError
from appliance.governance.binding import meta_digest
from appliance.governance.keypins import fingerprint, read_pins
from appliance.governance.ledger import EntryKind, Ledger
from appliance.store import devicekey, sealed
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir
from appliance.store.statements import check_seal
from appliance.units import LINE_RATE

PROBLEMS = ("altered", "mismatch", "missing", "cut", "unsigned", "data_key", "chain", "key",
            "stale")
STATUS_JA = {"intact": "正常", "truncated": "途中で切断 (復旧済)", "recording": "録音中",
             "erased": "廃棄済", "metadata": "記録のみ (音声なし)", "altered": "改変あり",
             "mismatch": "管理簿と不一致", "missing": "欠落", "cut": "切り詰め",
             "unsigned": "装置署名なし", "data_key": "データ鍵の異常", "chain": "管理簿の連鎖切れ",
             "key": "鍵の不一致", "stale": "録音中のまま"}
#: audio a crash may leave after the last signed statement (statements come once a second)
UNSIGNED_TAIL_S = 2.0
_AUDIO_STATES = ("complete", "truncated")
_DONE_STATES = ("complete", "truncated", "unanswered", "erased")


@dataclass(frozen=True)
class Finding:
    call_id: str
    status: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def problem(self) -> bool:
        return self.status in PROBLEMS


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0
    ledger_entries: int = 0
    device_signed: bool = False

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def _records(catalog: Catalog) -> tuple[dict, set]:
    """The last RECORD detail per call, and the calls with a 廃棄 entry."""
    records, erased = {}, set()
    for kind, call_ids, detail in catalog.conn.execute(
            "SELECT kind, call_ids, detail FROM ledger WHERE kind IN (?, ?) ORDER BY seq",
            (str(EntryKind.RECORD), str(EntryKind.ERASE))):
        try:
            ids, d = json.loads(call_ids), json.loads(detail)
        except ValueError:
            continue
        for cid in ids if isinstance(ids, list) else []:
            if kind == EntryKind.RECORD:
                records[cid] = d
            else:
                erased.add(cid)
    return records, erased


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return abs(float(a) - float(b)) < 1e-6
        except (TypeError, ValueError):
            return False
    return a == b


class _Audit:
    def __init__(self, dd: DataDir, catalog: Catalog, recorder_running: bool,
                 device_pem: bytes | None) -> None:
        self.dd, self.catalog, self.running = dd, catalog, recorder_running
        self.result = AuditResult()
        self.out = self.result.findings
        self.device_pem = device_pem
        self.public = None
        self.device_fp = None
        self.sig_cache: dict = {}

    def add(self, call_id: str, status: str, detail: str) -> None:
        self.out.append(Finding(call_id, status, detail))

    # --- the ledger and the pins ------------------------------------------------------------
    def chain(self) -> None:
        res = Ledger(self.catalog).verify()
        self.result.ledger_entries = res.entries
        if not res.ok:
            self.add("ledger", "chain", f"chain broken at {res.first_bad_seq}: {res.reason}")

    def pins(self) -> None:
        pins = read_pins(self.catalog)
        keys = self.dd.keys
        if pins.archive_key is not None:
            try:
                on_disk = bytes(keys.public_key())
            except KeyStoreError as exc:
                on_disk = None
                self.add("keys", "key", str(exc))
            if on_disk is not None and on_disk != pins.archive_key:
                self.add("keys", "key", "keys/archive.pub が管理簿に登録された保管鍵と異なります / "
                         "keys/archive.pub is not the archive key pinned in the ledger "
                         f"(pinned {pins.archive_fingerprint[:16]}…, found "
                         f"{fingerprint(on_disk)[:16]}…)")
            try:
                wrap_fp = keys.pinned_fingerprint()
            except KeyStoreError as exc:
                wrap_fp = None
                self.add("keys", "key", str(exc))
            first = self._init_archive_fp()
            if wrap_fp is not None and wrap_fp not in (first, pins.archive_fingerprint):
                self.add("keys", "key", "keys/wraps.json の保管鍵の指紋が管理簿と異なります / the "
                         "archive fingerprint in keys/wraps.json differs from the ledger's")
        pinned = pins.device_pem
        if pinned is None:
            if self.device_pem is not None:
                self.add("keys", "key", "管理簿に装置鍵が登録されていません / no device key is "
                         "pinned in the ledger, but one was given")
            return
        try:
            self.public = devicekey.load_public(pinned)
            self.device_fp = devicekey.fingerprint(pinned)
        except KeyStoreError as exc:
            self.add("keys", "key", f"pinned device key: {exc}")
            return
        self.result.device_signed = True
        if self.device_pem is not None and devicekey.fingerprint(self.device_pem) != self.device_fp:
            self.add("keys", "key", "指定の装置鍵が管理簿に登録された鍵と異なります / the device key "
                     "given is not the one pinned in the ledger")
        try:
            disk = (keys.root / "device.pub").read_bytes()
            if devicekey.fingerprint(disk) != self.device_fp:
                raise KeyStoreError("differs")
        except (OSError, KeyStoreError):
            self.add("keys", "key", "keys/device.pub が管理簿に登録された装置鍵と異なります / "
                     "keys/device.pub is missing or not the device key pinned in the ledger")

    def _init_archive_fp(self) -> str | None:
        row = self.catalog.conn.execute(
            "SELECT detail FROM ledger WHERE kind = ? ORDER BY seq LIMIT 1",
            (str(EntryKind.INIT),)).fetchone()
        try:
            return json.loads(row[0]).get("archive_fingerprint") if row else None
        except ValueError:
            return None

    # --- calls ---------------------------------------------------------------------------------
    def calls(self) -> None:
        records, erased = _records(self.catalog)
        seals = {r[0]: dict(zip(("call_id", "seq", "at", "length", "sha256", "final", "proof",
                                 "root", "sig"), r))
                 for r in self.catalog.conn.execute(
                     "SELECT call_id, seq, at, length, sha256, final, proof, root, sig"
                     " FROM capture_seals")}
        seen = set()
        for row in self.catalog.db["calls"].rows_where(order_by="started_at, id"):
            cid = row["id"]
            seen.add(cid)
            self.result.checked += 1
            before = len(self.out)
            self.call(row, records.get(cid), cid in erased, seals.get(cid))
            if len(self.out) == before:
                self.add(cid, "intact", "")
        for cid in sorted(set(records) - seen):
            if cid not in erased:
                self.add(cid, "missing", "管理簿に録音の記載があるのに台帳の行がありません / the ledger "
                         "records this call but its catalog row is gone")

    def call(self, row: dict, rec: dict | None, erased: bool, seal: dict | None) -> None:
        cid, state = row["id"], row["state"]
        if state == "erased":
            if not erased:
                self.add(cid, "mismatch", "廃棄の記載がないのに廃棄済みです / marked erased without "
                         "a 廃棄 entry in the ledger")
            else:
                self.add(cid, "erased", "")
            return
        if state not in _DONE_STATES:
            if self.running:
                self.add(cid, "recording", "録音中 / still being recorded")
            else:
                self.add(cid, "stale", "録音装置が動いていないのに録音中のままです / left "
                         f"'{state}' while no recorder runs (run 'appliance run' to recover it)")
            return
        if rec is None:
            self.add(cid, "mismatch", "管理簿に録音の記載がありません / no RECORD entry in the "
                     "ledger for this row")
        else:
            self.bound(row, rec)
        if row.get("recording_path") and state in _AUDIO_STATES:
            self.file(row, rec, seal)
        elif not any(f.call_id == cid for f in self.out[-3:]):
            self.add(cid, "metadata", "音声なし / a row without audio")

    def bound(self, row: dict, rec: dict) -> None:
        cid = row["id"]
        differ = []
        if rec.get("state") != row["state"]:
            differ.append(f"state (ledger {rec.get('state')}, catalog {row['state']})")
        for k in ("key_id", "size", "sha256", "recorded_s"):
            if k in rec and not _same(rec[k], row.get(k)):
                differ.append(k)
        if rec.get("meta") is not None and meta_digest(row, row.get("meta_salt")) != rec["meta"]:
            differ.append("times/numbers (日時・番号)")
        if differ:
            self.add(cid, "mismatch", "台帳が管理簿の記載と異なります / the catalog row differs from "
                     "its RECORD entry: " + ", ".join(differ))

    def file(self, row: dict, rec: dict | None, seal: dict | None) -> None:
        cid = row["id"]
        before = len(self.out)
        want = rec if rec and "sha256" in rec else row
        try:
            data = self.dd.path_of(row["recording_path"]).read_bytes()
        except FileNotFoundError:
            self.add(cid, "missing", f"{row['recording_path']} がありません / does not exist")
            return
        except (OSError, ApplianceError) as exc:
            self.add(cid, "missing", f"{row['recording_path']}: {exc}")
            return
        self.data_key(row)
        recovered = row["state"] == "truncated" and bool((rec or {}).get("recovered"))
        size_ok = len(data) == want.get("size")
        hash_ok = size_ok and hashlib.sha256(data).hexdigest() == want.get("sha256")
        try:
            layout = sealed.read_layout(data)
        except SealedFileError as exc:
            layout = None
            header_problem = str(exc)
        else:
            header_problem = None
            if layout.call_id != cid or layout.key_id != (want.get("key_id") or row["key_id"]):
                header_problem = "ファイルの見出しが別の通話・鍵を指しています / the file header names " \
                                 "another call or key"
            elif layout.problem:
                header_problem = layout.problem
        sig = None
        if self.public is not None:
            sig = check_seal(seal, data, self.public, self.device_fp, devicekey.verify,
                             self.sig_cache)
        short = want.get("size") is not None and len(data) < want["size"]
        if not hash_ok:
            if short and header_problem is None:
                self.add(cid, "cut", f"記録時 {want['size']} バイト → 現在 {len(data)} バイト / "
                         f"the file is shorter than recorded ({len(data)} of {want['size']} bytes)")
            else:
                self.add(cid, "altered", "SHA-256 が管理簿の記載と異なります / SHA-256 differs "
                         "from the ledger's RECORD entry")
        elif header_problem:
            self.add(cid, "altered", header_problem)
        elif row["state"] == "complete" and not layout.complete:
            self.add(cid, "altered", "完了のはずが閉じられていません / marked complete but not closed")
        if sig is not None and not (short and sig.signed_length > len(data)):
            self.signature(row, data, layout, sig, recovered)
        if hash_ok and row["state"] == "truncated" and not recovered:
            self.add(cid, "cut", "復旧の記載がない切断です / truncated, but no crash recovery "
                     "recorded it")
        elif recovered and len(self.out) == before:
            secs = layout.samples / LINE_RATE if layout is not None else 0.0
            self.add(cid, "truncated", f"停電・強制終了で切断、復旧済み / cut by a crash and closed "
                     f"by the recovery; {secs:.1f} s recoverable")

    def signature(self, row: dict, data: bytes, layout, sig, recovered: bool) -> None:
        cid = row["id"]
        if sig.problem is not None:
            status = "unsigned" if sig.signed_length == 0 and "no device" in sig.problem \
                else "altered"
            self.add(cid, status, sig.problem)
            return
        if row["state"] == "complete":
            if not sig.final or sig.signed_length != len(data):
                self.add(cid, "unsigned", f"装置の署名は {sig.signed_length} バイトまで / the device "
                         f"signed only {sig.signed_length} of {len(data)} bytes, not the closed file")
            return
        # truncated by a crash: what came after the last statement is at most a second or two
        tail = 0.0
        if layout is not None:
            signed = [c.samples_end for c in layout.chunks if c.offset < sig.signed_length]
            tail = (layout.samples - (signed[-1] if signed else 0)) / LINE_RATE
        if tail > UNSIGNED_TAIL_S:
            self.add(cid, "unsigned", f"署名後の {tail:.1f} 秒が未署名 / {tail:.1f} s after the "
                     "last device-signed length")

    def data_key(self, row: dict) -> None:
        cid = row["id"]
        state = self.dd.keys.data_key_state(row["key_id"]) if row.get("key_id") else "missing"
        if state == "missing":
            self.add(cid, "data_key", "データ鍵がありません / the data key is missing")
        elif state == "damaged":
            self.add(cid, "data_key", "データ鍵が壊れています / the data key file is damaged")


def audit(dd: DataDir, catalog: Catalog, *, recorder_running: bool = False,
          device_pem: bytes | None = None) -> AuditResult:
    a = _Audit(dd, catalog, recorder_running, device_pem)
    a.chain()
    a.pins()
    a.calls()
    return a.result

