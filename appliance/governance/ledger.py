"""The management ledger (通話記録管理簿, R14): append-only, hash-chained.

Each entry's hash covers its own fields and the previous entry's hash, so an
edit, deletion, insertion or reordering breaks the chain at the first entry
touched. ``verify`` names that entry.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from appliance.governance.grounds import GROUNDS, Ground
from appliance.store.catalog import Catalog, to_local_text, to_utc_text

GENESIS = "0" * 64


class EntryKind(StrEnum):
    RECORD = "record"          # 録音
    LISTEN = "listen"          # 閲覧
    EXTRACT = "extract"        # 複製
    PROVIDE = "provide"        # 提供
    HOLD = "hold"              # 保管延長
    RELEASE = "release"        # 延長解除
    ERASE = "erase"            # 廃棄
    USER = "user"              # 利用者管理
    MAINTENANCE = "maintenance"  # 保守
    REFUSED = "refused"        # 拒否
    INIT = "init"              # 初期設定
    TIER = "tier"              # 別媒体へ移管 (second retention stage)
    REQUEST = "request"        # 開示請求 (受付・終了; R15)
    ALARM = "alarm"            # 警報 (発生・解除・確認)
    POWER = "power"            # 電源 (停電・低残量による停止・復電)
    CLOCK = "clock"            # 時刻 (時刻の飛び: 旧時刻と新時刻)
    KEY = "key"                # 鍵の登録 (a new archive public key pinned; enrolment)
    TIMESTAMP = "timestamp"    # 時刻認証 (an RFC 3161 token over the ledger's head)
    ARCHIVE = "archive"        # 中央保管 (enrolment, key re-sealing, sites and uploads at the centre)


KIND_LABELS_JA = {
    EntryKind.RECORD: "録音", EntryKind.LISTEN: "閲覧", EntryKind.EXTRACT: "複製",
    EntryKind.PROVIDE: "提供", EntryKind.HOLD: "保管延長", EntryKind.RELEASE: "延長解除",
    EntryKind.ERASE: "廃棄", EntryKind.USER: "利用者管理", EntryKind.MAINTENANCE: "保守",
    EntryKind.REFUSED: "拒否", EntryKind.INIT: "初期設定", EntryKind.TIER: "別媒体へ移管",
    EntryKind.REQUEST: "開示請求", EntryKind.ALARM: "警報", EntryKind.POWER: "電源",
    EntryKind.CLOCK: "時刻",
    EntryKind.KEY: "鍵の登録", EntryKind.TIMESTAMP: "時刻認証", EntryKind.ARCHIVE: "中央保管",
}

_FIELDS = ("seq", "at", "kind", "call_ids", "ground", "reference", "actor", "approver",
           "recipient", "detail")


def _entry_hash(prev_hash: str, row: dict) -> str:
    body = json.dumps({k: row[k] for k in _FIELDS}, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None
    reason: str | None
    head_seq: int = 0
    head_hash: str = GENESIS


class Ledger:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def append(self, kind: EntryKind, at: datetime, *, call_ids: list[str] | tuple = (),
               ground: str | None = None, reference: str | None = None,
               actor: str | None = None, approver: str | None = None,
               recipient: str | None = None, detail: dict | None = None) -> dict:
        with self.catalog.transaction():
            last = self.catalog.conn.execute(
                "SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
            row = {
                "seq": seq, "at": to_utc_text(at), "kind": str(kind),
                "call_ids": json.dumps(list(call_ids)), "ground": ground,
                "reference": reference, "actor": actor, "approver": approver,
                "recipient": recipient,
                "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True),
            }
            row["prev_hash"] = prev
            row["hash"] = _entry_hash(prev, row)
            self.catalog.db["ledger"].insert(row)
        return row

    def entries(self) -> list[dict]:
        return list(self.catalog.db["ledger"].rows_where(order_by="seq"))

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Walk the chain; ``anchor`` (seq, hash) is a head an auditor noted earlier.

        The chain alone shows any edit, deletion, insertion or reordering
        *before* its last entry; removing entries from its end is shown only
        against an anchor kept outside the appliance (printed at each audit).
        """
        result = self._walk()
        if result.ok and anchor is not None:
            seq, digest = anchor
            row = self.catalog.conn.execute("SELECT hash FROM ledger WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return VerifyResult(False, result.entries, seq,
                                    "anchored entry is missing (entries removed from the end)",
                                    result.head_seq, result.head_hash)
            if row[0] != digest:
                return VerifyResult(False, result.entries, seq, "anchored entry differs",
                                    result.head_seq, result.head_hash)
        return result

    def _walk(self) -> VerifyResult:
        prev, expected_seq, n = GENESIS, 1, 0
        for row in self.catalog.conn.execute(
                f"SELECT {', '.join(_FIELDS)}, prev_hash, hash FROM ledger ORDER BY rowid"):
            entry = dict(zip((*_FIELDS, "prev_hash", "hash"), row))
            n += 1
            if entry["seq"] != expected_seq:
                return VerifyResult(False, n, entry["seq"],
                                    f"sequence gap or reordering (expected {expected_seq})")
            if entry["prev_hash"] != prev:
                return VerifyResult(False, n, entry["seq"], "does not follow the previous entry")
            if _entry_hash(prev, entry) != entry["hash"]:
                return VerifyResult(False, n, entry["seq"], "entry altered")
            prev, expected_seq = entry["hash"], expected_seq + 1
        return VerifyResult(True, n, None, None, expected_seq - 1, prev)


#: the columns of a paper 通話記録管理簿, then what makes the chain checkable
CSV_COLUMNS = ("日時", "区分", "対象通話", "根拠", "参照番号", "提供先", "実施者", "承認者",
               "詳細", "番号", "ハッシュ")


def csv_rows(entries: list[dict]):
    codes = {g.value for g in Ground}
    for e in entries:
        ground = e["ground"]
        label = GROUNDS[Ground(ground)].label_ja if ground in codes else ground
        yield [to_local_text(e["at"]), KIND_LABELS_JA.get(EntryKind(e["kind"]), e["kind"]),
               " ".join(json.loads(e["call_ids"])), label or "", e["reference"] or "",
               e["recipient"] or "", e["actor"] or "", e["approver"] or "",
               e["detail"] if e["detail"] != "{}" else "", e["seq"], e["hash"]]


def csv_bytes(entries: list[dict]) -> bytes:
    """The ledger as CSV in UTF-8 with a BOM, so that Japanese Excel opens it cleanly."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    w.writerows(csv_rows(entries))
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
