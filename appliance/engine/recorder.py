"""Starting, feeding and closing one call's recording, and crash recovery.

The recorder holds only the archive *public* key: it can seal a new data key
but never open a recording (R16). Each call gets a catalog row in state
``recording`` before its first byte is written, so a crash leaves a row that
the next start closes as ``truncated`` with the duration recovered from the
file's clear framing (no key needed).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from appliance.governance.ledger import EntryKind, Ledger
from appliance.store.catalog import TOKYO, Catalog, from_utc_text, to_utc_text
from appliance.store.datadir import DataDir
from appliance.store.opus import EncoderSettings
from appliance.store.recording import CallTags, RecordingEncoder, RecordingFile, inspect_file

log = logging.getLogger(__name__)


def new_call_id(started_at: datetime, trunk: str, channel: int) -> str:
    """Sortable, readable, unique: 20260105T083012-T1c1-3f9a2b."""
    return f"{started_at.astimezone(TOKYO).strftime('%Y%m%dT%H%M%S')}-{trunk}c{channel}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class CallInfo:
    site: str
    trunk: str
    channel: int
    direction: str                       # "in" | "out"
    started_at: datetime


class ActiveRecording:
    def __init__(self, recorder: "CallRecorder", call_id: str, info: CallInfo,
                 encoder: RecordingEncoder, file: RecordingFile) -> None:
        self.recorder = recorder
        self.call_id = call_id
        self.info = info
        self.encoder = encoder
        self.file = file
        self.file.append(encoder.start())

    def write(self, far: np.ndarray, near: np.ndarray) -> None:
        self.file.append(self.encoder.write(far, near))

    def mark_answered(self, answered_at: datetime) -> None:
        """Noted at once, so that a crash still leaves the right duration."""
        self.recorder.catalog.update_call(self.call_id, answered_at=to_utc_text(answered_at))

    def finish(self, ended_at: datetime, *, answered_at: datetime | None = None,
               far_number: str | None = None, near_number: str | None = None,
               called_number: str | None = None, number_absent_reason: str | None = None,
               notice: str = "none") -> dict:
        self.file.append(self.encoder.close())
        sha = self.file.close()
        duration = (ended_at - answered_at).total_seconds() if answered_at else None
        fields = dict(
            state="complete", ended_at=to_utc_text(ended_at),
            answered_at=to_utc_text(answered_at) if answered_at else None,
            duration_s=round(duration, 3) if duration is not None else None,
            far_number=far_number, near_number=near_number, called_number=called_number,
            number_absent_reason=number_absent_reason, notice=notice,
            size=self.file.size, sha256=sha, recorded_s=self.encoder.duration_s)
        cat = self.recorder.catalog
        with cat.transaction():
            cat.update_call(self.call_id, **fields)
            self.recorder.ledger.append(
                EntryKind.RECORD, ended_at, call_ids=[self.call_id], actor="recorder",
                detail={"state": "complete", "sha256": sha, "size": self.file.size})
        # technician-level log: never a number (R11)
        log.info("call %s ended: %s, %.1f s recorded", self.call_id, self.info.trunk,
                 self.encoder.duration_s)
        return fields


class CallRecorder:
    def __init__(self, datadir: DataDir, catalog: Catalog, site: str,
                 settings: EncoderSettings = EncoderSettings()) -> None:
        self.datadir = datadir
        self.catalog = catalog
        self.ledger = Ledger(catalog)
        self.site = site
        self.settings = settings

    def start(self, trunk: str, channel: int, direction: str, started_at: datetime) -> ActiveRecording:
        info = CallInfo(self.site, trunk, channel, direction, started_at)
        call_id = new_call_id(started_at, trunk, channel)
        key_id, data_key = self.datadir.keys.new_data_key()
        relpath = self.datadir.recording_relpath(call_id, started_at)
        self.catalog.insert_call({
            "id": call_id, "site": self.site, "trunk": trunk, "channel": channel,
            "direction": direction, "started_at": to_utc_text(started_at), "notice": "none",
            "state": "recording", "recording_path": relpath, "key_id": key_id,
        })
        encoder = RecordingEncoder(CallTags(call_id, self.site, trunk, channel, started_at),
                                   key_id, data_key, self.settings)
        del data_key  # the encoder keeps the only copy, for this call's life
        log.info("call %s started: %s channel %d, %s", call_id, trunk, channel, direction)
        return ActiveRecording(self, call_id, info, encoder,
                               RecordingFile(self.datadir.path_of(relpath)))


def recover_interrupted(datadir: DataDir, catalog: Catalog, now: datetime) -> list[str]:
    """Close every recording a crash left open as ``truncated``; returns their ids."""
    ledger = Ledger(catalog)
    closed = []
    for row in catalog.calls(states=("recording",)):
        path = datadir.path_of(row["recording_path"])
        started = from_utc_text(row["started_at"])
        if path.exists():
            rec = inspect_file(path)
            size, sha, recorded = rec.size, rec.sha256, rec.recorded_s
        else:
            size, sha, recorded = 0, None, 0.0   # crashed before the first byte
        ended = started + timedelta(seconds=recorded)
        answered = from_utc_text(row["answered_at"])
        duration = max(0.0, (ended - answered).total_seconds()) if answered else None
        with catalog.transaction():
            catalog.update_call(row["id"], state="truncated", ended_at=to_utc_text(ended),
                                duration_s=duration, size=size, sha256=sha, recorded_s=recorded)
            ledger.append(EntryKind.RECORD, now, call_ids=[row["id"]], actor="recorder",
                          detail={"state": "truncated", "sha256": sha, "size": size,
                                  "recorded_s": recorded})
        log.warning("call %s was interrupted: closed as truncated with %.1f s", row["id"], recorded)
        closed.append(row["id"])
    return closed
