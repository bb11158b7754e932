"""What a RECORD entry of the ledger binds, so that ``verify`` can hold a call to it (R9, R14).

A call's RECORD entry is written in the same transaction that closes its
catalog row. Its detail carries what a forger would have to change:

- ``key_id``, ``size``, ``sha256``, ``recorded_s`` of the sealed file;
- ``meta``: the SHA-256 of the row's other fields (times, numbers, line,
  direction, notice …) salted with 16 random bytes kept in the row
  (``calls.meta_salt``). The salt keeps telephone numbers out of the
  ledger: a plain hash of a number is reversed by trying every number,
  and erasure clears the salt with the numbers, so an erased call's digest
  tells nothing (R8).

Anyone can recompute ``meta`` from the row (verify needs no key); changing
``far_number`` or ``started_at`` in the catalog changes it. The chain (and
the RFC 3161 tokens over it) keep the entry itself from being rewritten.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime

from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import Catalog

#: the row's fields the RECORD entry's ``meta`` digest covers (not state, path or size:
#: those change legitimately — erasure and tiering have their own entries — or are bound
#: directly)
META_FIELDS = ("id", "site", "trunk", "channel", "direction", "started_at", "offered_at",
               "answered_at", "ended_at", "duration_s", "far_number", "near_number",
               "called_number", "number_absent_reason", "notice", "excluded")


def meta_digest(row: dict, salt: str | None) -> str | None:
    """The salted digest of a row's fields; None for a row without a salt (erased)."""
    if not salt:
        return None
    body = json.dumps({k: row.get(k) for k in META_FIELDS}, ensure_ascii=False,
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(bytes.fromhex(salt) + body.encode()).hexdigest()


def record_detail(row: dict) -> dict:
    """The RECORD entry's detail for a closed row (``meta_salt`` already set)."""
    detail = {"state": row["state"], "meta": meta_digest(row, row.get("meta_salt"))}
    if row.get("recording_path"):
        detail.update(key_id=row.get("key_id"), size=row.get("size"), sha256=row.get("sha256"),
                      recorded_s=row.get("recorded_s"))
    return detail


def close_record(catalog: Catalog, call_id: str, fields: dict, at: datetime, *,
                 actor: str = "recorder", extra: dict | None = None) -> dict:
    """Update a call's row with ``fields`` and write its RECORD entry, in one transaction."""
    fields = dict(fields, meta_salt=secrets.token_hex(16))
    with catalog.transaction():
        catalog.update_call(call_id, **fields)
        row = catalog.get_call(call_id)
        detail = dict(record_detail(row), **(extra or {}))
        Ledger(catalog).append(EntryKind.RECORD, at, call_ids=[call_id], actor=actor,
                               detail=detail)
    return row


def insert_record(catalog: Catalog, row: dict, at: datetime, *, actor: str = "recorder") -> dict:
    """Insert a row without audio (unanswered, excluded kept as metadata) with its RECORD entry."""
    row = dict(row, meta_salt=secrets.token_hex(16))
    with catalog.transaction():
        catalog.insert_call(row)
        full = catalog.get_call(row["id"])
        Ledger(catalog).append(EntryKind.RECORD, at, call_ids=[row["id"]], actor=actor,
                               detail=record_detail(full))
    return full
