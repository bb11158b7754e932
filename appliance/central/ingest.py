"""What the centre does with a site's upload: check it, store it, or refuse it on the ledger.

A batch is a run of the site's outbox items (keys, call rows, chunks of
sealed files, ledger entries), numbered by the site's outbox sequence. It is
stored only if it continues exactly where the site's stored items end: an
earlier number is a replay (a resend after a lost answer is one too — the
sender asks for the centre's position after every cut, so it never resends
what is stored), a later one a reordering. Either is refused, on the city
ledger, and nothing of it is stored. Inside a batch:

- a chunk must be the call's next (index and byte offset): its bytes go to
  the call's file in ``incoming/`` and are forced to disk before the row
  that counts them commits; bytes beyond the committed count (a failed
  transaction) are cut off before the next write, so a PostgreSQL restart
  mid-upload loses or doubles nothing;
- each site ledger entry must continue the site's chain (sequence, previous
  hash, its own hash recomputed with the appliance's ledger code); the chain
  is kept verbatim beside the city's;
- a call row updates the centre's index; the centre's own state, numbers and
  file are never overwritten by a site that erased first.

After the batch commits, every call whose bytes are all here is *settled*:
its file's SHA-256 must equal the site's row (and its ledger entry), then the
file moves into the content-addressed store and the call is confirmed to the
site. A mismatch is an alarm and a ledger entry, and the call is not
confirmed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass, field

from appliance.central.centre import Centre
from appliance.central.pgcatalog import PgCatalog
from appliance.errors import ApplianceError
from appliance.governance.ledger import _FIELDS as LEDGER_FIELDS
from appliance.governance.ledger import EntryKind, Ledger, _entry_hash
from appliance.store.catalog import to_utc_text

log = logging.getLogger(__name__)

#: the appliance catalog's columns a site sends for a call
SITE_FIELDS = ("site", "trunk", "channel", "direction", "started_at", "answered_at", "ended_at",
               "duration_s", "far_number", "near_number", "called_number",
               "number_absent_reason", "notice", "state", "key_id", "size", "sha256",
               "recorded_s", "erased_at", "erase_reason", "offered_at", "overrun_frames",
               "excluded", "clock_unsynced", "meta_salt")
_NUMBERS = ("far_number", "near_number", "called_number", "number_absent_reason", "meta_salt")
_CALL_ID = re.compile(r"^[A-Za-z0-9T_.-]{1,80}$")
_KEY_ID = re.compile(r"^[0-9a-f]{8,64}$")
MAX_ITEMS = 5000
MAX_CHUNK = 4 * 1024 * 1024


class Refused(ApplianceError):
    """An upload the centre does not store; ``code`` is stable for the sender."""

    def __init__(self, status: int, code: str, message: str, **detail) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail


@dataclass
class BatchResult:
    stored_upto: int
    confirmed: list[str] = field(default_factory=list)
    holds: list[dict] = field(default_factory=list)
    releases: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"stored_upto": self.stored_upto, "confirmed": self.confirmed,
                "holds": self.holds, "releases": self.releases}


def centre_call_id(site: str, site_call_id: str) -> str:
    """The centre's id of a site's call: ``SITE_CALLID`` (site codes have no '_'), unique
    across sites, and still a plain id in URLs and file names."""
    return f"{site}_{site_call_id}"


def ledger_refusal(centre: Centre, actor: str, reason: str, **detail) -> None:
    """A refused connection or upload, on the city ledger (best effort: the DB may be down)."""
    try:
        with centre.catalog() as cat:
            Ledger(cat).append(EntryKind.REFUSED, centre.clock.now(), actor=actor,
                               detail={"action": "upload", "reason": reason, **detail})
    except ApplianceError:
        log.exception("could not ledger a refusal (%s)", reason)


def site_row(cat: PgCatalog, code: str) -> dict | None:
    rows = list(cat.db["sites"].rows_where("code = ?", [code]))
    return rows[0] if rows else None


def apply_batch(centre: Centre, site: str, batch: dict) -> BatchResult:
    """Store one batch of ``site`` or raise :class:`Refused` (already ledgered)."""
    try:
        first, last, items = _shape(batch)
    except Refused as exc:
        ledger_refusal(centre, f"site:{site}", exc.code, message=str(exc))
        raise
    touched: set[str] = set()
    refusal: Refused | None = None
    with centre.catalog() as cat:
        try:
            with cat.transaction():
                row = cat.conn.execute("SELECT outbox_seq, ledger_seq, ledger_head FROM sites"
                                       " WHERE code = ? FOR UPDATE", (site,)).fetchone()
                if row is None:
                    raise Refused(403, "unknown_site", f"未登録の拠点です / unknown site {site}")
                stored, lseq, lhead = row
                if first <= stored:
                    raise Refused(409, "replay", "既に受信済みの送信です (再送・再生攻撃) / "
                                  f"replayed upload: items {first}–{last}, stored up to {stored}",
                                  first=first, last=last, stored_upto=stored)
                if first != stored + 1:
                    raise Refused(409, "reordered", "順序が飛んだ送信です / reordered upload: "
                                  f"items from {first}, stored up to {stored}",
                                  first=first, last=last, stored_upto=stored)
                keys: list = []          # file effects, done only once every item passed
                files = _Files()
                for item in items:
                    kind = item["kind"]
                    if kind == "key":
                        keys.append(_key(centre, item))
                    elif kind == "call":
                        files.flush_rows(cat)     # the row may change what a chunk may be
                        touched.add(_call(cat, site, item))
                    elif kind == "chunk":
                        touched.add(_chunk(centre, cat, site, item, files))
                    elif kind == "ledger":
                        lseq, lhead = _ledger(centre, cat, site, item["entry"], lseq, lhead)
                    elif kind == "gone":
                        touched.add(centre_call_id(site, item["call_id"]))
                files.flush_rows(cat)
                for write in keys:
                    write()
                files.write()
                cat.conn.execute("UPDATE sites SET outbox_seq = ?, ledger_seq = ?,"
                                 " ledger_head = ?, last_seen_at = ? WHERE code = ?",
                                 (last, lseq, lhead, to_utc_text(centre.clock.now()), site))
        except Refused as exc:
            refusal = exc
    if refusal is not None:
        ledger_refusal(centre, f"site:{site}", refusal.code, message=str(refusal),
                       **{k: v for k, v in refusal.detail.items() if k != "stored_upto"})
        raise refusal
    result = BatchResult(last)
    result.confirmed = settle(centre, sorted(touched))
    result.holds, result.releases = pending_holds(centre, site)
    return result


def _shape(batch: dict) -> tuple[int, int, list[dict]]:
    bad = Refused(400, "malformed", "送信内容の形式が不正です / malformed upload")
    if not isinstance(batch, dict) or not isinstance(batch.get("items"), list):
        raise bad
    items = batch["items"]
    if not 1 <= len(items) <= MAX_ITEMS:
        raise bad
    seqs = [i.get("seq") if isinstance(i, dict) else None for i in items]
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seqs):
        raise bad
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))):
        raise Refused(409, "reordered", "送信内の順序が不正です / items out of order in the upload")
    for item in items:
        kind = item.get("kind")
        cid = item.get("call_id")
        if kind in ("key", "call", "chunk", "gone") and not (isinstance(cid, str)
                                                             and _CALL_ID.match(cid)):
            raise bad
        if kind == "key" and not (isinstance(item.get("key_id"), str)
                                  and _KEY_ID.match(item["key_id"])):
            raise bad
        if kind == "call" and not isinstance(item.get("row"), dict):
            raise bad
        if kind == "chunk" and not (isinstance(item.get("chunk"), int)
                                    and isinstance(item.get("offset"), int)
                                    and isinstance(item.get("data"), str)):
            raise bad
        if kind == "ledger" and not isinstance(item.get("entry"), dict):
            raise bad
        if kind not in ("key", "call", "chunk", "ledger", "gone"):
            raise bad
    return seqs[0], seqs[-1], items


def _b64(text: str, limit: int) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise Refused(400, "malformed", "送信内容の形式が不正です / malformed upload (base64)"
                      ) from None
    if len(data) > limit:
        raise Refused(400, "malformed", "チャンクが大きすぎます / chunk too large")
    return data


def _key(centre: Centre, item: dict):
    sealed = _b64(item.get("sealed", ""), 4096)
    path = centre.dir.keys._data_key_path(item["key_id"])
    if path.exists() and path.read_bytes() != sealed:
        raise Refused(409, "key_conflict", "既存のデータ鍵と異なります / a different data key "
                      f"already has id {item['key_id']}", key_id=item["key_id"])
    return lambda: centre.dir.keys.put_data_key(item["key_id"], sealed)


def _call(cat: PgCatalog, site: str, item: dict) -> str:
    row = {k: item["row"].get(k) for k in SITE_FIELDS}
    cid = centre_call_id(site, item["call_id"])
    if row["direction"] not in ("in", "out") or not row["started_at"] or row["state"] not in (
            "recording", "complete", "truncated", "unanswered", "erased"):
        raise Refused(400, "malformed", f"通話記録の形式が不正です / malformed call row {cid}")
    have = cat.conn.execute("SELECT state, stored_at, key_id FROM calls WHERE id = ?",
                            (cid,)).fetchone()
    site_state = row.pop("state")
    if have is None:
        state = "recording" if site_state in ("complete", "truncated") else site_state
        if site_state == "erased":
            row.update({k: None for k in _NUMBERS})
            row["erase_reason"] = f"site: {row.get('erase_reason') or 'erased'}"
        cat.db["calls"].insert({**row, "id": cid, "state": state, "site_state": site_state,
                                "site_code": site, "site_call_id": item["call_id"]})
        return cid
    state, stored_at, key_id = have
    if row["key_id"] and key_id and row["key_id"] != key_id:
        raise Refused(409, "key_conflict", f"{cid}: データ鍵が変わりました / the call's data key "
                      "changed")
    if site_state == "erased":
        # the site erased first (retention, or storage pressure once confirmed): the centre's
        # copy follows its own rule; only a call the centre never got is erased with it
        if stored_at is None and state != "erased":
            cat.conn.execute(
                "UPDATE calls SET site_state = 'erased', state = 'erased', erased_at = ?,"
                " erase_reason = ?, far_number = NULL, near_number = NULL,"
                " called_number = NULL, number_absent_reason = NULL WHERE id = ?",
                (row["erased_at"], f"site: {row.get('erase_reason') or 'erased'}", cid))
        else:
            cat.conn.execute("UPDATE calls SET site_state = 'erased' WHERE id = ?", (cid,))
        return cid
    if state == "erased":
        cat.conn.execute("UPDATE calls SET site_state = ? WHERE id = ?", (site_state, cid))
        return cid
    fields = dict(row, site_state=site_state)
    if site_state in ("unanswered", "recording"):
        fields["state"] = site_state
    cat.conn.execute(f"UPDATE calls SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?",
                     (*fields.values(), cid))
    return cid


class _Files:
    """A batch's chunks: counts kept per call and written to PostgreSQL once per call; bytes
    written per file, each file forced to disk once, before the batch commits."""

    def __init__(self) -> None:
        self.calls: dict[str, list] = {}          # cid -> [next_chunk, received, dirty]
        self.data: dict = {}                      # path -> (offset of the first chunk, [bytes])

    def state(self, cat: PgCatalog, cid: str) -> list | None:
        if cid not in self.calls:
            row = cat.conn.execute("SELECT next_chunk, received_bytes, stored_at, state FROM"
                                   " calls WHERE id = ?", (cid,)).fetchone()
            if row is None:
                return None
            if row[2] is not None or row[3] == "erased":
                return [None, None, False]        # stored or erased: no chunk is next
            self.calls[cid] = [row[0], row[1], False]
        return self.calls[cid]

    def flush_rows(self, cat: PgCatalog) -> None:
        for cid, (nxt, received, dirty) in self.calls.items():
            if dirty:
                cat.conn.execute("UPDATE calls SET next_chunk = ?, received_bytes = ?"
                                 " WHERE id = ?", (nxt, received, cid))
        self.calls.clear()

    def write(self) -> None:
        for path, (offset, parts) in self.data.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
            try:
                os.ftruncate(fd, offset)          # bytes of an upload whose commit failed
                os.pwrite(fd, b"".join(parts), offset)
                os.fsync(fd)
            finally:
                os.close(fd)


def _chunk(centre: Centre, cat: PgCatalog, site: str, item: dict, files: _Files) -> str:
    cid = centre_call_id(site, item["call_id"])
    data = _b64(item["data"], MAX_CHUNK)
    st = files.state(cat, cid)
    if st is None:
        raise Refused(409, "reordered", f"{cid}: 通話記録より先にチャンクが届きました / a chunk "
                      "arrived before its call row")
    next_chunk, received, _ = st
    if next_chunk is None or item["chunk"] != next_chunk or item["offset"] != received:
        raise Refused(409, "reordered", f"{cid}: チャンク {item['chunk']} は次のもの "
                      f"({next_chunk}) ではありません / chunk {item['chunk']} at "
                      f"{item['offset']} is not the next ({next_chunk} at {received})",
                      call_id=cid, chunk=item["chunk"])
    path = centre.dir.incoming_path(site, item["call_id"])
    files.data.setdefault(path, (received, []))[1].append(data)
    st[:] = [next_chunk + 1, received + len(data), True]
    return cid


def _ledger(centre: Centre, cat: PgCatalog, site: str, entry: dict, lseq: int,
            lhead: str) -> tuple[int, str]:
    try:
        row = {k: entry[k] for k in (*LEDGER_FIELDS, "prev_hash", "hash")}
    except KeyError:
        raise Refused(400, "malformed", "管理簿の項目が不正です / malformed ledger entry") from None
    if row["seq"] != lseq + 1 or row["prev_hash"] != lhead:
        raise Refused(409, "chain_broken", "拠点の管理簿が連続していません / the site's ledger "
                      f"does not continue: entry {row['seq']} after {lseq}", seq=row["seq"])
    if _entry_hash(lhead, row) != row["hash"]:
        raise Refused(409, "chain_broken", "拠点の管理簿の項目が改変されています / the site's "
                      f"ledger entry {row['seq']} does not match its hash", seq=row["seq"])
    cat.db["site_ledger"].insert({**row, "site_code": site,
                                  "received_at": to_utc_text(centre.clock.now())})
    _mirror_holds(cat, site, row)
    return row["seq"], row["hash"]


def _mirror_holds(cat: PgCatalog, site: str, row: dict) -> None:
    """A hold placed (or released) at the site protects the centre's copy too."""
    try:
        detail = json.loads(row["detail"] or "{}")
        call_ids = json.loads(row["call_ids"] or "[]")
    except ValueError:
        return
    if row["kind"] == str(EntryKind.HOLD) and not detail.get("central_hold"):
        for site_call, hold_id in zip(call_ids, detail.get("hold_ids") or []):
            cid = centre_call_id(site, site_call)
            if cat.conn.execute("SELECT 1 FROM calls WHERE id = ?", (cid,)).fetchone() is None:
                continue
            cat.db["holds"].insert({
                "call_id": cid, "ground": row["ground"] or "", "reference": row["reference"] or "",
                "until": detail.get("until"), "created_by": f"{site}:{row['actor']}",
                "created_at": row["at"], "request_id": None, "origin": "site",
                "site_hold_id": hold_id})
    elif row["kind"] == str(EntryKind.RELEASE) and not detail.get("central_hold"):
        for hold_id in detail.get("hold_ids") or []:
            cat.conn.execute(
                "UPDATE holds SET released_at = ?, released_by = ?, release_reference = ?"
                " WHERE origin = 'site' AND site_hold_id = ? AND released_at IS NULL"
                " AND call_id LIKE ?", (row["at"], f"{site}:{row['actor']}", row["reference"],
                                        hold_id, f"{site}\\_%"))


def settle(centre: Centre, call_ids: list[str]) -> list[str]:
    """Move every fully arrived, verified file into the store; the site call ids confirmed."""
    confirmed = []
    if not call_ids:
        return confirmed
    with centre.catalog() as cat:
        marks = ", ".join("?" * len(call_ids))
        rows = cat.conn.execute(
            "SELECT id, site_code, site_call_id, site_state, state, size, sha256,"
            f" received_bytes, stored_at, key_id FROM calls WHERE id IN ({marks})",
            list(call_ids)).fetchall()
        for cid, site, site_call, site_state, state, size, sha, received, stored_at, key_id \
                in rows:
            if stored_at is not None or state == "unanswered":
                confirmed.append(site_call)
                continue
            if site_state not in ("complete", "truncated") or size is None or received != size:
                continue
            if key_id and not centre.dir.keys.has_data_key(key_id):
                continue
            part = centre.dir.incoming_path(site, site_call)
            if sha is None or not part.exists():
                continue
            os.truncate(part, received)       # bytes beyond the committed count never count
            digest = _sha256_file(part)
            if digest != sha:
                _mismatch(centre, cat, cid, sha, digest)
                continue
            rel = centre.dir.store_relpath(digest)
            dst = centre.dir.path_of(rel)
            if not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(f".{dst.name}.tmp")
                shutil.copyfile(part, tmp)        # the store may be another file system (NAS)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
                os.replace(tmp, dst)
                centre.dir.fsync_dir(dst.parent)
            cat.conn.execute("UPDATE calls SET recording_path = ?, stored_at = ?, state = ?"
                             " WHERE id = ? AND state != 'erased'",
                             (rel, to_utc_text(centre.clock.now()), site_state, cid))
            part.unlink(missing_ok=True)
            confirmed.append(site_call)
    return confirmed


def _sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _mismatch(centre: Centre, cat: PgCatalog, cid: str, want: str, got: str) -> None:
    from appliance.ops.alarms import AlarmCode, AlarmRegistry
    AlarmRegistry(cat, centre.clock.now, actor="centre").raise_(AlarmCode.ARCHIVE_MISMATCH, cid,
                                                 "file hash differs from the site's record")
    Ledger(cat).append(EntryKind.ARCHIVE, centre.clock.now(), call_ids=[cid], actor="centre",
                       detail={"event": "hash mismatch", "expected": want, "received": got})


def pending_holds(centre: Centre, site: str) -> tuple[list[dict], list[dict]]:
    """Holds placed (and releases made) at the centre that the site has not applied yet."""
    with centre.catalog() as cat:
        cols = ("id", "site_call_id", "ground", "reference", "until", "created_by", "request_id")
        holds = [dict(zip(cols, r)) for r in cat.conn.execute(
            "SELECT h.id, c.site_call_id, h.ground, h.reference, h.until, h.created_by,"
            " h.request_id FROM holds h JOIN calls c ON c.id = h.call_id"
            " WHERE c.site_code = ? AND h.origin = 'centre' AND h.delivered_at IS NULL"
            " AND h.released_at IS NULL ORDER BY h.id", (site,))]
        releases = [dict(zip(("id", "site_call_id", "released_by", "release_reference"), r))
                    for r in cat.conn.execute(
            "SELECT h.id, c.site_call_id, h.released_by, h.release_reference FROM holds h"
            " JOIN calls c ON c.id = h.call_id WHERE c.site_code = ? AND h.origin = 'centre'"
            " AND h.delivered_at IS NOT NULL AND h.released_at IS NOT NULL"
            " AND h.release_delivered_at IS NULL ORDER BY h.id", (site,))]
    return holds, releases


def holds_applied(centre: Centre, site: str, holds: list[int], releases: list[int]) -> None:
    at = to_utc_text(centre.clock.now())
    with centre.catalog() as cat, cat.transaction():
        for hid in holds:
            cat.conn.execute(
                "UPDATE holds SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL AND"
                " call_id IN (SELECT id FROM calls WHERE site_code = ?)", (at, int(hid), site))
        for hid in releases:
            cat.conn.execute(
                "UPDATE holds SET release_delivered_at = ? WHERE id = ? AND"
                " release_delivered_at IS NULL AND call_id IN (SELECT id FROM calls"
                " WHERE site_code = ?)", (at, int(hid), site))


def site_state(centre: Centre, site: str) -> dict:
    with centre.catalog() as cat:
        row = site_row(cat, site)
    holds, releases = pending_holds(centre, site)
    return {"site": site, "stored_upto": row["outbox_seq"], "ledger_seq": row["ledger_seq"],
            "ledger_head": row["ledger_head"], "holds": holds, "releases": releases}
