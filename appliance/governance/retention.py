"""Retention (保管期間, R6) and certain erasure (確実に消去, R8).

Day boundary, exactly: periods are counted in Japan time and, as the Civil
Code counts periods (民法第140条, 第143条), from the day *after* the record
was made. With the default of three calendar months a call recorded on
5 January is kept through 5 April and becomes erasable at 00:00 JST on
6 April; where the month has no corresponding day, the period ends with that
month (recorded 29 November → erasable 1 March). Policies:

- ``months``: N calendar months (default 3; 要綱第7条第5項);
- ``days``: N days (30, 90 … as other municipalities use);
- ``end_of_next_month``: until the end of the month after the recording
  month (兵庫県): erasable at 00:00 on the first day of the month after that.

Erasure of one record is crash-safe in this order: (1) in one transaction the
catalog row is marked ``erased`` (numbers cleared, hash kept) together with
its ledger entry — from here on the record is erased for everyone; (2) its
data key is overwritten and unlinked; (3) the recording file is unlinked.
Every sweep first finishes any erasure a crash interrupted after (1), so a
record is always either intact or erased, never half. Held records (R7) are
never candidates, not even under storage pressure.
"""

from __future__ import annotations

import calendar
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from appliance.errors import ConfigError
from appliance.governance.holds import active_holds_sql
from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import TOKYO, Catalog, to_utc_text
from appliance.store.datadir import DataDir

log = logging.getLogger(__name__)

ERASABLE_STATES = ("complete", "truncated", "unanswered")
#: where the separate media of a tiered policy is mounted, inside the data dir
TIER_DIR = "tier"
POLICIES = ("months", "days", "end_of_next_month")
BATCH = 200


def _add_months(d: date, months: int) -> date | None:
    """The corresponding day ``months`` later, or None when that month lacks it."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    if d.day > calendar.monthrange(year, month)[1]:
        return None
    return date(year, month, d.day)


@dataclass(frozen=True)
class RetentionPolicy:
    kind: str = "months"
    months: int = 3
    days: int = 90
    #: storage pressure: below this much free space the oldest unheld records go first
    min_free_mb: int = 0
    #: export bundles kept on the appliance (plain audio, for download) this long
    export_keep_hours: int = 24
    #: second stage on separate media mounted at DATA_DIR/tier (大阪市水道局: 6 + 6
    #: months): 0 = none; otherwise records move there when the first period
    #: ends and are erased this many months later
    tier_months: int = 0

    def __post_init__(self) -> None:
        if self.kind not in POLICIES:
            raise ConfigError(f"[retention] policy must be one of {', '.join(POLICIES)}")
        if (not 1 <= self.months <= 120 or not 1 <= self.days <= 3660 or self.min_free_mb < 0
                or not 0 <= self.export_keep_hours <= 24 * 31 or not 0 <= self.tier_months <= 120):
            raise ConfigError("[retention] months 1–120, days 1–3660, min_free_mb ≥ 0, "
                              "export_keep_hours 0–744, tier_months 0–120")

    @classmethod
    def from_config(cls, table: dict | None) -> "RetentionPolicy":
        table = dict(table or {})
        unknown = set(table) - {"policy", "months", "days", "min_free_mb", "export_keep_hours",
                                "tier_months"}
        if unknown:
            raise ConfigError(f"[retention] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        try:
            return cls(kind=table.pop("policy", "months"), **table)
        except TypeError as exc:
            raise ConfigError(f"[retention] {exc}") from None

    def describe_ja(self) -> str:
        if self.kind == "months":
            text = f"記録日の翌日から{self.months}か月 (要綱第7条第5項)"
        elif self.kind == "days":
            text = f"記録日の翌日から{self.days}日"
        else:
            text = "記録月の翌月末まで"
        return text + (f", その後別媒体で{self.tier_months}か月" if self.tier_months else "")

    def erasable_from(self, recorded: date) -> date:
        """The Japan-time day from whose 00:00 a record made on ``recorded`` may be erased."""
        primary = self.primary_ends(recorded)
        if not self.tier_months:
            return primary
        # the second period starts where the first ended, counted the same way
        return _months_after(primary - timedelta(days=1), self.tier_months)

    def primary_ends(self, recorded: date) -> date:
        """The day from whose 00:00 the first period is over (erasure, or the move to the tier)."""
        start = recorded + timedelta(days=1)       # 初日不算入
        if self.kind == "days":
            return start + timedelta(days=self.days)
        if self.kind == "end_of_next_month":
            y, m = divmod(recorded.month + 1, 12)  # first day of the month after next
            return date(recorded.year + y, m + 1, 1)
        return _months_after(recorded, self.months)

    def erasable_at(self, recorded: date) -> datetime:
        return datetime.combine(self.erasable_from(recorded), time.min, TOKYO)

    def last_expired_day(self, now: datetime) -> date:
        """The latest recording day whose records are erasable at ``now`` (monotonic search)."""
        return _last_day(now, self.erasable_from)

    def last_primary_day(self, now: datetime) -> date:
        """The latest recording day whose first period is over at ``now``."""
        return _last_day(now, self.primary_ends)


def _months_after(last_day_before: date, months: int) -> date:
    """The day from which ``months`` calendar months counted from the day after
    ``last_day_before`` are over; where the final month lacks the corresponding
    day, the period ends with that month (民法第143条)."""
    start = last_day_before + timedelta(days=1)
    corresponding = _add_months(start, months)
    if corresponding is None:
        nxt = _add_months(date(start.year, start.month, 1), months + 1)
        assert nxt is not None
        return nxt
    return corresponding


def _last_day(now: datetime, ends: Callable[[date], date]) -> date:
    today = now.astimezone(TOKYO).date()
    d = today
    # periods are at most ~20 years: step back until over, bounded
    for _ in range(8000):
        if datetime.combine(ends(d), time.min, TOKYO) <= now:
            return d
        d -= timedelta(days=1)
    return d


@dataclass
class SweepResult:
    erased: list[str] = field(default_factory=list)
    finished: int = 0                    # erasures a crash had interrupted, now completed
    held_kept: int = 0                   # expired but held: kept (R7)
    pressure_erased: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    exports_removed: list[str] = field(default_factory=list)
    moved_to_tier: list[str] = field(default_factory=list)
    day_keys: dict = field(default_factory=dict)     # what the TPM destroyed (R8)


class Sweeper:
    """Erases expired unheld records; idempotent; safe to kill at any point."""

    def __init__(self, datadir: DataDir, catalog: Catalog, policy: RetentionPolicy,
                 now: Callable[[], datetime], *,
                 free_bytes: Callable[[], int] | None = None,
                 fault: Callable[[str, str], None] | None = None,
                 archived: Callable[[], set[str]] | None = None) -> None:
        self.datadir = datadir
        self.catalog = catalog
        self.ledger = Ledger(catalog)
        self.policy = policy
        self.now = now
        self.free_bytes = free_bytes or (lambda: _free_bytes(datadir.root))
        # test hook: called as fault(step, call_id) between the steps of an erasure
        self._fault = fault or (lambda step, call_id: None)
        self._hold_slots_touched: set[int] = set()
        # an enrolled appliance: the calls the city archive holds complete. Storage pressure
        # never erases a call outside it; retention does (it must), and its entry says so
        self.archived = archived
        self._archived: set[str] | None = None

    # --- what would go -------------------------------------------------------
    def _expired_where(self, at: datetime) -> tuple[str, list]:
        cutoff = datetime.combine(self.policy.last_expired_day(at) + timedelta(days=1),
                                  time.min, TOKYO)
        states = ", ".join(f"'{s}'" for s in ERASABLE_STATES)
        return f"state IN ({states}) AND started_at < ?", [to_utc_text(cutoff)]

    def plan(self, at: datetime) -> dict:
        where, args = self._expired_where(at)
        held_sql = active_holds_sql(to_utc_text(at))
        cur = self.catalog.conn.execute(
            f"SELECT id, started_at, {held_sql} AS held FROM calls WHERE {where}"
            " ORDER BY started_at, id", args)
        erase, held = [], []
        for call_id, started, is_held in cur:
            recorded = datetime.fromisoformat(started).astimezone(TOKYO).date()
            item = {"id": call_id, "started_at": started,
                    "erasable_at": self.policy.erasable_at(recorded).isoformat()}
            (held if is_held else erase).append(item)
        return {"at": at.isoformat(), "policy": self.policy.kind,
                "policy_ja": self.policy.describe_ja(), "erase": erase, "held": held}

    # --- erasure ---------------------------------------------------------------
    def _mark_erased(self, rows: list[tuple], reason: str, at: datetime) -> list[tuple]:
        """Step 1 for a batch: rows and ledger entries in one transaction."""
        held_sql = active_holds_sql(to_utc_text(at))
        done = []
        with self.catalog.transaction():
            for call_id, key_id, relpath, sha in rows:
                # re-checked inside the transaction: a hold placed a moment ago wins
                cur = self.catalog.conn.execute(
                    "UPDATE calls SET state = 'erased', erased_at = ?, erase_reason = ?,"
                    " far_number = NULL, near_number = NULL, called_number = NULL,"
                    " number_absent_reason = NULL, meta_salt = NULL"
                    f" WHERE id = ? AND state IN ({', '.join('?' * len(ERASABLE_STATES))})"
                    f" AND NOT {held_sql}",
                    (to_utc_text(at), reason, call_id, *ERASABLE_STATES))
                if cur.rowcount != 1:
                    continue
                detail = {"reason": reason, "sha256": sha}
                if self._archived is not None and call_id not in self._archived:
                    detail["archive"] = "unconfirmed"   # the centre has no complete copy
                self.ledger.append(EntryKind.ERASE, at, call_ids=[call_id], actor="retention",
                                   reference=self.policy.describe_ja(), detail=detail)
                done.append((call_id, key_id, relpath))
        return done

    def _destroy(self, call_id: str, key_id: str | None, relpath: str | None) -> None:
        """Steps 2 and 3: key first, then the file; both idempotent."""
        if key_id:
            wrap = self.datadir.keys.key_wrap_of(key_id)
            if wrap is not None and wrap[0] == "hold":
                self._hold_slots_touched.add(wrap[1])   # its slot goes too (_certain_on_flash)
            self.datadir.keys.destroy_data_key(key_id)
        self._fault("key-destroyed", call_id)
        if relpath:
            try:
                os.unlink(self.datadir.path_of(relpath))
            except FileNotFoundError:
                pass
        self._fault("file-removed", call_id)

    def finish_pending(self) -> int:
        """Complete erasures a crash interrupted after step 1."""
        n = 0
        for call_id, key_id, relpath in self.catalog.conn.execute(
                "SELECT id, key_id, recording_path FROM calls WHERE state = 'erased'").fetchall():
            key_left = bool(key_id) and self.datadir.keys.has_data_key(key_id)
            file_left = bool(relpath) and self.datadir.path_of(relpath).exists()
            if key_left or file_left:
                self._destroy(call_id, key_id, relpath)
                n += 1
        return n

    def _erase(self, rows: list[tuple], reason: str, result_list: list[str]) -> None:
        at = self.now()
        for i in range(0, len(rows), BATCH):
            for call_id, key_id, relpath in self._mark_erased(rows[i:i + BATCH], reason, at):
                self._fault("marked", call_id)
                self._destroy(call_id, key_id, relpath)
                result_list.append(call_id)

    def sweep(self) -> SweepResult:
        result = SweepResult()
        self._archived = self.archived() if self.archived is not None else None
        result.finished = self.finish_pending()
        at = self.now()
        where, args = self._expired_where(at)
        held_sql = active_holds_sql(to_utc_text(at))
        rows = self.catalog.conn.execute(
            f"SELECT id, key_id, recording_path, sha256 FROM calls WHERE {where} AND NOT {held_sql}"
            " ORDER BY started_at, id", args).fetchall()
        result.held_kept = self.catalog.conn.execute(
            f"SELECT COUNT(*) FROM calls WHERE {where} AND {held_sql}", args).fetchone()[0]
        self._erase(rows, "retention", result.erased)
        if self.policy.tier_months:
            self._move_to_tier(result)
        self._remove_old_exports(result)
        self._relieve_pressure(result)
        self._certain_on_flash(result)
        for text in result.alarms:
            log.warning("ALARM %s", text)
            self.ledger.append(EntryKind.MAINTENANCE, self.now(), actor="retention",
                               detail={"alarm": text})
        # erased numbers must not linger in the write-ahead log either
        self.catalog.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if result.erased or result.pressure_erased:
            log.info("retention sweep: %d erased, %d under storage pressure, %d held kept",
                     len(result.erased), len(result.pressure_erased), result.held_kept)
        return result

    def _certain_on_flash(self, result: SweepResult) -> None:
        """Destroy in the TPM the day keys (and hold keys) nothing live needs any more (R8).

        Every day up to the day before the oldest live, unheld record (and never
        today) is destroyed; records of those days still alive — held ones — are
        re-wrapped under a fresh hold key first. A hold key one of whose records
        was erased here moves its other records to a fresh slot and is destroyed.
        From then on every old copy of those key files, wherever flash left it,
        is noise whatever passwords or recovery keys survive. Crash-safe: a key
        file is re-wrapped (atomically) before its old key is destroyed; a crash
        between leaves both keys alive and the next sweep destroys the old one.
        """
        keys = self.datadir.keys
        dk = keys.day_keys()
        if dk is None:
            return
        at = self.now()
        today = at.astimezone(TOKYO).date()
        held_sql = active_holds_sql(to_utc_text(at))
        rows = self.catalog.conn.execute(
            f"SELECT id, key_id, started_at, {held_sql} FROM calls WHERE state != 'erased'"
            " AND key_id IS NOT NULL").fetchall()
        detail: dict = {}
        for slot in sorted(self._hold_slots_touched):
            live = [k for _, k, _, _ in rows if keys.key_wrap_of(k) == ("hold", slot)]
            if live:
                new_slot, kek = dk.new_hold_slot()
                keys.rewrap_for_hold(live, new_slot, kek)
                detail.setdefault("hold_keys_moved", []).append([slot, new_slot, len(live)])
            dk.destroy_hold_slot(slot)
            detail.setdefault("hold_keys_destroyed", []).append(slot)
        self._hold_slots_touched.clear()
        oldest = dk.oldest_day()

        def day(started: str) -> date:
            return datetime.fromisoformat(started).astimezone(TOKYO).date()

        unheld = [day(s) for _, _, s, held in rows if not held and day(s) >= oldest]
        until = min(unheld) - timedelta(days=1) if unheld else today - timedelta(days=1)
        until = min(until, today - timedelta(days=1))
        if until >= oldest:
            move = [k for _, k, s, _ in rows if oldest <= day(s) <= until
                    and (keys.key_wrap_of(k) or ("", 0))[0] == "day"]
            if move:
                slot, kek = dk.new_hold_slot()
                keys.rewrap_for_hold(move, slot, kek)
                detail["held_rewrapped"] = {"slot": slot, "records": len(move)}
            dk.destroy_through(until)
            detail["day_keys_destroyed_through"] = until.isoformat()
        if detail:
            result.day_keys = detail
            self.ledger.append(EntryKind.ERASE, at, actor="retention",
                               reference="TPM 日鍵・保管延長鍵の破棄",
                               detail=dict(detail, reason="key-encryption keys destroyed in the TPM"))

    def _move_to_tier(self, result: SweepResult) -> None:
        """Records past their first period move to the separate media (DATA_DIR/tier).

        Crash-safe: copy to a temporary name, force it to the media, check its
        SHA-256 against the catalog, rename, point the catalog row at it, then
        remove the original; an original left behind by a crash is removed on
        the next sweep. Only the sealed file moves: its key stays here, so the
        separate media alone reveals nothing.
        """
        tier = self.datadir.root / TIER_DIR
        for (relpath,) in self.catalog.conn.execute(
                "SELECT recording_path FROM calls WHERE recording_path LIKE ?",
                (f"{TIER_DIR}/%",)).fetchall():
            original = self.datadir.path_of(relpath[len(TIER_DIR) + 1:])
            if original.exists():
                original.unlink()
        at = self.now()
        cutoff = datetime.combine(self.policy.last_primary_day(at) + timedelta(days=1),
                                  time.min, TOKYO)
        rows = self.catalog.conn.execute(
            "SELECT id, recording_path, sha256 FROM calls WHERE state IN ('complete', 'truncated')"
            " AND recording_path IS NOT NULL AND recording_path NOT LIKE ? AND started_at < ?"
            " ORDER BY started_at, id", (f"{TIER_DIR}/%", to_utc_text(cutoff))).fetchall()
        if not rows:
            return
        if not tier.is_dir():
            result.alarms.append(f"別媒体が {tier} にありません / separate media not mounted at "
                                 f"{tier}: {len(rows)} record(s) wait on the primary storage")
            return
        for call_id, relpath, sha in rows:
            src = self.datadir.path_of(relpath)
            dst_rel = f"{TIER_DIR}/{relpath}"
            dst = self.datadir.path_of(dst_rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp")
            data = src.read_bytes()
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            if hashlib.sha256(tmp.read_bytes()).hexdigest() != sha:
                tmp.unlink()
                result.alarms.append(f"{call_id}: 別媒体への複写が一致しません / the copy on the "
                                     "separate media does not match; the record stays")
                continue
            os.replace(tmp, dst)
            with self.catalog.transaction():
                self.catalog.update_call(call_id, recording_path=dst_rel)
                self.ledger.append(EntryKind.TIER, at, call_ids=[call_id], actor="retention",
                                   reference=self.policy.describe_ja(), detail={"sha256": sha})
            src.unlink()
            result.moved_to_tier.append(call_id)

    def _remove_old_exports(self, result: SweepResult) -> None:
        """Bundles left on the appliance hold plain audio: they go after a day (R16).

        Only bundles inside the data directory (where the web service puts
        them) are the appliance's to remove; a CLI export written elsewhere
        (a removable disk) is the exporter's responsibility.
        """
        at = self.now()
        cutoff = to_utc_text(at - timedelta(hours=self.policy.export_keep_hours))
        root = self.datadir.root.resolve()
        for export_id, path in self.catalog.conn.execute(
                "SELECT id, path FROM exports WHERE created_at < ? ORDER BY created_at",
                (cutoff,)).fetchall():
            bundle = Path(path)
            if root not in bundle.parents or not bundle.exists():
                continue
            _remove_tree(bundle)
            self.ledger.append(EntryKind.ERASE, at, actor="retention", reference=export_id,
                               detail={"reason": "export bundle expired", "export": export_id})
            result.exports_removed.append(export_id)

    def _relieve_pressure(self, result: SweepResult) -> None:
        need = self.policy.min_free_mb * 1024 * 1024
        if not need or self.free_bytes() >= need:
            return
        at = self.now()
        held_sql = active_holds_sql(to_utc_text(at))
        states = ", ".join(f"'{s}'" for s in ("complete", "truncated"))
        # bounded: each pass erases one record, and there are finitely many
        for call_id, key_id, relpath, sha in self.catalog.conn.execute(
                f"SELECT id, key_id, recording_path, sha256 FROM calls WHERE state IN ({states})"
                f" AND NOT {held_sql} ORDER BY started_at, id").fetchall():
            if self.free_bytes() >= need:
                break
            if self._archived is not None and call_id not in self._archived:
                continue     # the centre has no complete copy yet: never erased early
            self._erase([(call_id, key_id, relpath, sha)], "storage_pressure",
                        result.pressure_erased)
        if result.pressure_erased:
            result.alarms.append(
                f"保管期間を守れません: 容量不足のため期間内の記録 {len(result.pressure_erased)} 件を"
                f"廃棄しました / retention policy can no longer be kept: {len(result.pressure_erased)}"
                " record(s) erased early for lack of space")
        if self.free_bytes() < need:
            result.alarms.append("空き容量が不足しています (残りは保管延長中の記録のみ) / storage "
                                 "still below its minimum; only held records remain")


def _remove_tree(path: Path) -> None:
    """Overwrite each file before unlinking it (as for data keys), then the folders."""
    if path.is_file() or path.is_symlink():
        paths = [path]
    else:
        paths = sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True)
    for p in paths:
        if p.is_symlink() or p.is_file():
            if not p.is_symlink():
                with open(p, "r+b") as f:
                    size = f.seek(0, os.SEEK_END)
                    f.seek(0)
                    f.write(b"\0" * size)
                    f.flush()
                    os.fsync(f.fileno())
            p.unlink()
        elif p.is_dir():
            p.rmdir()
    if path.is_dir():
        path.rmdir()


def _free_bytes(path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
