"""Starting, feeding and closing one call's recording, and crash recovery.

The recorder holds only the archive *public* key: it can seal a new data key
but never open a recording (R16). The capture thread does the CPU work —
a fresh data key sealed in memory, Opus encoding and sealing of the audio
(:class:`RecordingEncoder`) — and hands the resulting jobs to a *sink*
(writer.py): a writer thread in the engine, or inline for tools and tests.
The writer inserts the call's row in state ``recording`` before the first
byte is written, so a crash leaves a row that the next start closes as
``truncated`` with the duration recovered from the file's clear framing.

An outgoing call's recording may be *held*: encoded but kept in memory until
the dialled number shows whether the call is excluded (R5); ``commit`` hands
it over, ``discard`` drops it without a trace.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from nacl.public import SealedBox

from appliance.governance.binding import close_record
from appliance.governance.keypins import sealing_key
from appliance.engine.encoding import PeriodEncoder
from appliance.engine.writer import (AppendJob, FinishJob, InlineSink, OpenJob, RowJob,
                                     UpdateJob, Writer)
from appliance.store.catalog import TOKYO, Catalog, from_utc_text, to_utc_text
from appliance.store.datadir import DataDir
from appliance.store.opus import EncoderSettings
from appliance.store.recording import CallTags, RecordingEncoder, inspect_file

log = logging.getLogger(__name__)

#: most audio a held (undecided) recording keeps in memory: 40 pages ≈ 32 s
MAX_HELD_CHUNKS = 40


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
                 encoder: RecordingEncoder, open_job: OpenJob, hold: bool) -> None:
        self.recorder = recorder
        self.sink = recorder.sink
        self.call_id = call_id
        self.info = info
        self.encoder = encoder
        self.lost_frames = 0
        self._open_job = open_job
        first = encoder.start()
        self._held: list[bytes] | None = [first] if hold else None
        self._fields: dict = {}
        self._queued = False           # staged frames wait for the period's end (encoding.py)
        # which periods this recording's staged frames are encoded in (one in
        # frames_per_encode): spread over the recordings so that each period
        # encodes about the same number of frames
        self._slot = recorder.batch.next_slot() if recorder.batch is not None else 0
        if not hold:
            self.sink.submit(open_job)
            self.sink.submit_audio(AppendJob(call_id, first))

    @property
    def held(self) -> bool:
        return self._held is not None

    def write(self, far: np.ndarray, near: np.ndarray) -> bool:
        """Encode one 20 ms frame; False if it was lost because the writer is behind."""
        if self.encoder is None:
            return True
        if self._held is None and not self.sink.has_room():
            self.lost_frames += 1
            return False
        batch = self.recorder.batch
        if batch is None:
            self._hand_over(self.encoder.write(far, near))
        else:                      # encoded at a period's end, on both cores (encoding.py)
            enc = self.encoder
            if enc.stage_full:
                self._settle()     # a second frame in a due period (the last, at hang-up)
            due = enc.stage(far, near) or batch.due(self._slot)
            if due and not self._queued:
                self._queued = True
                batch.add(self)
        return True

    def _settle(self) -> None:
        """Encode the staged frames now: before anything that must follow them in order."""
        if self._queued:
            self.recorder.batch.remove(self)
            self._queued = False
        if self.encoder is not None and self.encoder.staged:
            self._deliver(self.encoder.encode_staged())

    def _deliver(self, packets: list[bytes]) -> None:
        self._queued = False
        if self.encoder is not None:
            for data in self.encoder.add_packets(packets):
                self._hand_over(data)

    def _hand_over(self, data: bytes) -> None:
        if data:
            if self._held is not None:
                self._held.append(data)
                if len(self._held) > MAX_HELD_CHUNKS:
                    self.commit()      # undecided too long: keep the audio rather than lose it
            else:
                self.sink.submit_audio(AppendJob(self.call_id, data))

    def commit(self) -> None:
        """A held recording is kept: its row, then everything encoded so far."""
        if self._held is None:
            return
        self._settle()
        held, self._held = self._held, None
        self.sink.submit(self._open_job)
        for data in held:
            if self.sink.has_room():
                self.sink.submit_audio(AppendJob(self.call_id, data))
            else:   # cannot drop a sealed chunk from the middle: keep the order, count the loss
                self.sink.submit(AppendJob(self.call_id, data))
        if self._fields:
            self.sink.submit(UpdateJob(self.call_id, self._fields))

    def discard(self) -> None:
        """A held recording of an excluded call: nothing reaches disk."""
        if self._queued:
            self.recorder.batch.remove(self)
            self._queued = False
        self._held = []
        self.encoder = None       # the data key goes with it

    def mark_answered(self, answered_at: datetime) -> None:
        """Noted at once, so that a crash still leaves the right duration."""
        self._fields["answered_at"] = to_utc_text(answered_at)
        if self._held is None:
            self.sink.submit(UpdateJob(self.call_id, {"answered_at": to_utc_text(answered_at)}))

    def finish(self, ended_at: datetime, *, answered_at: datetime | None = None,
               far_number: str | None = None, near_number: str | None = None,
               called_number: str | None = None, number_absent_reason: str | None = None,
               notice: str = "none", state: str = "complete") -> dict:
        if self.encoder is None:
            return {}
        self._settle()
        self.commit()
        duration = (ended_at - answered_at).total_seconds() if answered_at else None
        fields = dict(
            state=state, answered_at=to_utc_text(answered_at) if answered_at else None,
            duration_s=round(duration, 3) if duration is not None else None,
            far_number=far_number, near_number=near_number, called_number=called_number,
            number_absent_reason=number_absent_reason, notice=notice,
            overrun_frames=self.lost_frames)
        if self.recorder.clock_unsynced:
            fields["clock_unsynced"] = 1      # the clock lost NTP during the call
        recorded = self.encoder.duration_s
        self.sink.submit(FinishJob(self.call_id, self.encoder.close(), fields, ended_at, recorded))
        self.encoder = None
        # no logging here: this runs in the capture thread; reports.py logs (without numbers)
        return dict(fields, recorded_s=recorded)


class CallRecorder:
    def __init__(self, datadir: DataDir, catalog: Catalog, site: str,
                 settings: EncoderSettings = EncoderSettings(), sink=None) -> None:
        self.datadir = datadir
        self.catalog = catalog
        self.site = site
        self.settings = settings
        self.sink = sink if sink is not None else InlineSink(Writer(datadir, catalog))
        # read once, before capture starts: the archive key the ledger pinned, never a
        # swapped keys/archive.pub (the front end alarms on ``key_problem``)
        public, self.key_problem = sealing_key(datadir, catalog)
        if self.key_problem:
            log.error("%s", self.key_problem)
        self._public = SealedBox(public)
        #: set by the engine: frames are then encoded at each period's end (encoding.py)
        self.batch: PeriodEncoder | None = None
        #: set by the operations monitor while NTP is not synchronised: calls made
        #: meanwhile are flagged in the catalog (their times may be wrong)
        self.clock_unsynced = False

    def start(self, trunk: str, channel: int, direction: str, started_at: datetime, *,
              offered_at: datetime | None = None, hold: bool = False) -> ActiveRecording:
        info = CallInfo(self.site, trunk, channel, direction, started_at)
        call_id = new_call_id(started_at, trunk, channel)
        key_id, data_key = secrets.token_hex(12), secrets.token_bytes(32)
        relpath = self.datadir.recording_relpath(call_id, started_at)
        row = {
            "id": call_id, "site": self.site, "trunk": trunk, "channel": channel,
            "direction": direction, "started_at": to_utc_text(started_at), "notice": "none",
            "state": "recording", "recording_path": relpath, "key_id": key_id,
            "offered_at": to_utc_text(offered_at or started_at),
            "clock_unsynced": int(self.clock_unsynced),
        }
        job = OpenJob(call_id, row, key_id, self._public.encrypt(data_key), relpath)
        encoder = RecordingEncoder(CallTags(call_id, self.site, trunk, channel, started_at),
                                   key_id, data_key, self.settings)
        del data_key  # the encoder keeps the only copy, for this call's life
        return ActiveRecording(self, call_id, info, encoder, job, hold)

    def log_row(self, trunk: str, channel: int, direction: str, offered_at: datetime,
                ended_at: datetime, *, state: str, excluded: bool = False, **numbers) -> str:
        """A row without audio: an unanswered call, or an excluded one kept as metadata."""
        call_id = new_call_id(offered_at, trunk, channel)
        row = {"id": call_id, "site": self.site, "trunk": trunk, "channel": channel,
               "direction": direction, "started_at": to_utc_text(offered_at),
               "offered_at": to_utc_text(offered_at), "ended_at": to_utc_text(ended_at),
               "notice": "none", "state": state, "excluded": int(excluded),
               "clock_unsynced": int(self.clock_unsynced), **numbers}
        self.sink.submit(RowJob(row, ended_at))
        return call_id


def recover_interrupted(datadir: DataDir, catalog: Catalog, now: datetime) -> list[str]:
    """Close every recording a crash left open as ``truncated``; returns their ids."""
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
        # "recovered": verify tells this truncation (explained) from a file cut later
        close_record(catalog, row["id"], dict(
            state="truncated", ended_at=to_utc_text(ended), duration_s=duration, size=size,
            sha256=sha, recorded_s=recorded), now, extra={"recovered": True})
        log.warning("call %s was interrupted: closed as truncated with %.1f s", row["id"], recorded)
        closed.append(row["id"])
    return closed
