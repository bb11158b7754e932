"""``appliance replicate``: send the outbox to the centre, in order, over mutual TLS.

The loop, in its own process (a stalled network never touches recording):

1. after every start and every cut, ask the centre where the site's stored
   items end (``GET state``) and drop what it holds — so a batch whose
   answer was lost is not sent again, and the centre can treat any resend
   as a replay;
2. pull new ledger entries from the catalog into the outbox;
3. send the next batch — at most ``batch_items`` items and ``batch_bytes``
   of file data, read from the sealed files at their recorded offsets (so
   memory stays bounded whatever the backlog) — and drop it on success;
4. apply the holds placed at the centre (and their releases) to the local
   catalog, each with its own ledger entry, and report them applied.

Failures back off exponentially (``backoff_min_s`` to ``backoff_max_s``,
with jitter). The outbox's oldest item older than ``outbox_alarm_s`` raises
the ``outbox_stalled`` alarm; it clears when the backlog drains.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from appliance.errors import ApplianceError, ConfigError
from appliance.governance.ledger import EntryKind, Ledger
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.replication.link import SiteLink
from appliance.replication.outbox import Item, Outbox
from appliance.store.catalog import Catalog, to_utc_text
from appliance.store.datadir import DataDir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplicationSettings:
    """``[replication]`` in the appliance's configuration."""

    batch_items: int = 400
    batch_bytes: int = 2 * 1024 * 1024
    poll_s: float = 0.2
    backoff_min_s: float = 0.5
    backoff_max_s: float = 30.0
    outbox_alarm_s: float = 600.0
    timeout_s: float = 30.0

    @classmethod
    def from_config(cls, table: dict | None) -> "ReplicationSettings":
        table = dict(table or {})
        known = set(cls.__dataclass_fields__)
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"[replication] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")
        try:
            s = cls(**table)
        except TypeError as exc:
            raise ConfigError(f"[replication] {exc}") from None
        if not (1 <= s.batch_items <= 5000 and 4096 <= s.batch_bytes <= 32 * 1024 * 1024
                and 0.01 <= s.poll_s <= 10 and 0.01 <= s.backoff_min_s <= s.backoff_max_s <= 600
                and 10 <= s.outbox_alarm_s <= 7 * 86400 and 1 <= s.timeout_s <= 300):
            raise ConfigError("[replication] batch_items 1–5000, batch_bytes 4 KiB–32 MiB, "
                              "poll_s 0.01–10, backoff 0.01–600 s, outbox_alarm_s 10–604800, "
                              "timeout_s 1–300")
        return s


class Rejected(Exception):
    def __init__(self, status: int, doc: dict) -> None:
        super().__init__(f"{status} {doc.get('error')}: {doc.get('message')}")
        self.status = status
        self.doc = doc


@dataclass
class SenderStats:
    batches: int = 0
    items: int = 0
    bytes: int = 0
    failures: int = 0
    refusals: int = 0
    #: seconds from a chunk's queueing to the centre's acknowledgement (last 100 000)
    lags: list[float] = field(default_factory=list)


class Sender:
    def __init__(self, dd: DataDir, link: SiteLink, outbox: Outbox, catalog: Catalog,
                 now: Callable[[], datetime], settings: ReplicationSettings | None = None,
                 alarms: AlarmRegistry | None = None) -> None:
        self.dd = dd
        self.link = link
        self.outbox = outbox
        self.catalog = catalog
        self.now = now
        self.settings = settings or ReplicationSettings()
        self.alarms = alarms or AlarmRegistry(catalog, now, actor="replication")
        self.ledger = Ledger(catalog)
        self.stats = SenderStats()
        self.stop = threading.Event()
        self._conn: http.client.HTTPSConnection | None = None
        self._synced = False
        self._backoff = self.settings.backoff_min_s
        from urllib.parse import urlsplit
        u = urlsplit(link.url)
        self.host, self.port = u.hostname, u.port or 443
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cafile=str(link.ca_cert))
        ctx.load_cert_chain(link.client_cert, link.client_key)
        self.tls = ctx

    # --- transport ---------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None) -> dict:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls,
                                                     timeout=self.settings.timeout_s)
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        try:
            self._conn.request(method, f"/v1/sites/{self.link.site}/{path}", body=data,
                               headers={"Content-Type": "application/json"} if data else {})
            resp = self._conn.getresponse()
            raw = resp.read()
        except BaseException:
            self._drop()
            raise
        try:
            doc = json.loads(raw or b"{}")
        except ValueError:
            doc = {"error": "bad_answer", "message": raw[:200].decode(errors="replace")}
        if resp.status != 200:
            raise Rejected(resp.status, doc)
        return doc

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._synced = False

    def close(self) -> None:
        self._drop()

    # --- one step ----------------------------------------------------------------
    def sync(self) -> None:
        """Where the centre's copy ends: drop what it holds; apply its holds."""
        state = self._request("GET", "state")
        self.outbox.ack(int(state["stored_upto"]))
        self._synced = True
        self._apply_holds(state.get("holds") or [], state.get("releases") or [])

    def step(self) -> int:
        """Send one batch if there is one; returns the items sent (0 when idle)."""
        if not self._synced:
            self.sync()
        self.outbox.pull_ledger(self.catalog)
        items = self.outbox.pending(self.settings.batch_items)
        if not items:
            return 0
        body, sent_items = self._build(items)
        t0 = time.time()
        try:
            answer = self._request("POST", "batch", {"items": body})
        except Rejected as exc:
            if exc.status == 409:
                self._synced = False       # replay or reordering: ask where the centre is
            raise
        upto = int(answer["stored_upto"])
        self.outbox.ack(upto)
        self.outbox.confirm(list(answer.get("confirmed") or []))
        self._note_lags(sent_items, t0)
        self.stats.batches += 1
        self.stats.items += len(body)
        self._apply_holds(answer.get("holds") or [], answer.get("releases") or [])
        return len(body)

    def _note_lags(self, items: list[Item], t0: float) -> None:
        done = self.now()
        for it in items:
            if it.kind == "chunk":
                self.stats.lags.append(
                    (done - datetime.fromisoformat(it.queued_at)).total_seconds())
        del self.stats.lags[:-100_000]

    def _build(self, items: list[Item]) -> tuple[list[dict], list[Item]]:
        out: list[dict] = []
        used: list[Item] = []
        size = 0
        rows: dict[str, dict | None] = {}
        for it in items:
            if out and size >= self.settings.batch_bytes:
                break
            doc = self._item(it, rows)
            out.append(doc)
            used.append(it)
            size += it.length or 0
        self.stats.bytes += size
        return out, used

    def _row(self, call_id: str, rows: dict) -> dict | None:
        if call_id not in rows:
            found = list(self.catalog.db["calls"].rows_where("id = ?", [call_id]))
            rows[call_id] = found[0] if found else None
        return rows[call_id]

    def _item(self, it: Item, rows: dict) -> dict:
        base = {"seq": it.seq, "kind": it.kind}
        if it.kind == "ledger":
            entry = list(self.catalog.db["ledger"].rows_where("seq = ?", [it.ledger_seq]))
            if entry:
                return {**base, "entry": entry[0]}
            return {**base, "kind": "gone", "call_id": "-", "reason": "ledger entry missing"}
        row = self._row(it.call_id, rows)
        if it.kind == "call":
            if row is None:
                return {**base, "kind": "gone", "call_id": it.call_id, "reason": "no row"}
            return {**base, "call_id": it.call_id, "row": row}
        if it.kind == "key":
            try:
                sealed = self.dd.keys._data_key_path(it.key_id).read_bytes()
            except FileNotFoundError:
                return {**base, "kind": "gone", "call_id": it.call_id, "reason": "key erased"}
            # the sealed box inside a TPM day or hold wrap: the centre holds no TPM, and its
            # own erasure destroys its own file
            sealed = self.dd.keys.unwrap_file(sealed)
            return {**base, "call_id": it.call_id, "key_id": it.key_id,
                    "sealed": base64.b64encode(sealed).decode()}
        # a chunk: its bytes, read now from the append-only file
        data = None
        if row is not None and row["recording_path"] and row["state"] != "erased":
            try:
                fd = os.open(self.dd.path_of(row["recording_path"]), os.O_RDONLY)
                try:
                    data = os.pread(fd, it.length, it.offset)
                finally:
                    os.close(fd)
            except FileNotFoundError:
                data = None
        if data is None or len(data) != it.length:
            return {**base, "kind": "gone", "call_id": it.call_id, "reason": "file erased"}
        return {**base, "call_id": it.call_id, "chunk": it.chunk, "offset": it.offset,
                "data": base64.b64encode(data).decode()}

    # --- holds from the centre ---------------------------------------------------------
    def _apply_holds(self, holds: list[dict], releases: list[dict]) -> None:
        if not holds and not releases:
            return
        at = self.now()
        applied, released = [], []
        cat = self.catalog
        for h in holds:
            known = self.outbox.conn.execute(
                "SELECT local_id FROM central_holds WHERE central_id = ?", (h["id"],)).fetchone()
            if known is None:
                local = None
                with cat.transaction():
                    if list(cat.db["calls"].rows_where("id = ? AND state != 'erased'",
                                                       [h["site_call_id"]])):
                        local = cat.conn.execute(
                            "INSERT INTO holds (call_id, ground, reference, until, created_by,"
                            " created_at, request_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (h["site_call_id"], h["ground"], h["reference"], h["until"],
                             f"センター:{h['created_by']}", to_utc_text(at),
                             h.get("request_id"))).lastrowid
                        self.ledger.append(
                            EntryKind.HOLD, at, call_ids=[h["site_call_id"]], ground=h["ground"],
                            reference=h["reference"], actor=f"central:{h['created_by']}",
                            detail={"central_hold": h["id"], "hold_ids": [local],
                                    "until": h["until"], "request": h.get("request_id")})
                with self.outbox._tx():
                    self.outbox.conn.execute("INSERT OR IGNORE INTO central_holds (central_id,"
                                             " call_id, local_id) VALUES (?, ?, ?)",
                                             (h["id"], h["site_call_id"], local))
            applied.append(h["id"])
        for r in releases:
            known = self.outbox.conn.execute(
                "SELECT local_id, released FROM central_holds WHERE central_id = ?",
                (r["id"],)).fetchone()
            if known is not None and known[0] is not None and not known[1]:
                with cat.transaction():
                    cat.conn.execute(
                        "UPDATE holds SET released_at = ?, released_by = ?, release_reference = ?"
                        " WHERE id = ? AND released_at IS NULL",
                        (to_utc_text(at), f"センター:{r['released_by']}", r["release_reference"],
                         known[0]))
                    self.ledger.append(
                        EntryKind.RELEASE, at, call_ids=[r["site_call_id"]],
                        reference=r["release_reference"], actor=f"central:{r['released_by']}",
                        detail={"central_hold": r["id"], "hold_ids": [known[0]]})
                with self.outbox._tx():
                    self.outbox.conn.execute("UPDATE central_holds SET released = 1 WHERE"
                                             " central_id = ?", (r["id"],))
            released.append(r["id"])
        self._request("POST", "applied", {"holds": applied, "releases": released})

    # --- the loop ----------------------------------------------------------------------
    def check_alarm(self) -> None:
        oldest = self.outbox.oldest_queued_at()
        age = (self.now() - oldest).total_seconds() if oldest else 0.0
        if age > self.settings.outbox_alarm_s:
            self.alarms.raise_(AlarmCode.OUTBOX_STALLED, "",
                               f"oldest item waits {age:.0f} s ({self.outbox.count()} queued)")
        elif self.alarms.is_active(AlarmCode.OUTBOX_STALLED):
            self.alarms.clear(AlarmCode.OUTBOX_STALLED)

    def run(self, until_empty: bool = False) -> None:
        last_alarm_check = 0.0
        last_sync = time.monotonic()
        while not self.stop.is_set():
            sent = 0
            try:
                sent = self.step()
                self._backoff = self.settings.backoff_min_s
                if not sent and time.monotonic() - last_sync > 5.0:
                    self.sync()          # idle: pick up holds placed at the centre
                    last_sync = time.monotonic()
            except Rejected as exc:
                self.stats.refusals += 1
                log.warning("centre refused: %s", exc)
                self._wait_backoff()
            except (OSError, ssl.SSLError, http.client.HTTPException, ValueError, KeyError) as exc:
                self.stats.failures += 1
                log.info("centre unreachable (%s): backing off %.1f s", exc, self._backoff)
                self._drop()
                self._wait_backoff()
            except ApplianceError as exc:
                # a key file that cannot be unwrapped now (TPM away), a catalog busy: the item
                # stays first in the outbox, and the outbox alarm tells a person if it lasts
                self.stats.failures += 1
                log.warning("cannot prepare the next batch (%s): backing off", exc)
                self._wait_backoff()
            if time.monotonic() - last_alarm_check > 1.0:
                self.check_alarm()
                last_alarm_check = time.monotonic()
            if not sent:
                if until_empty and self.outbox.count() == 0 and self._synced:
                    # drained: the alarm clears before we leave, and its 警報 entry (alarms
                    # are ledgered) is sent too before the outbox counts as empty
                    self.check_alarm()
                    self.outbox.pull_ledger(self.catalog)
                    if self.outbox.count() == 0:
                        return
                    continue
                self.stop.wait(self.settings.poll_s)

    def _wait_backoff(self) -> None:
        self.stop.wait(self._backoff * (0.5 + random.random() / 2))
        self._backoff = min(self._backoff * 2, self.settings.backoff_max_s)
