"""The writer: everything that touches disk or database, fed through a bounded queue.

The capture thread never waits here. It hands over *jobs*: open a call
(persist its sealed data key, insert its catalog row in state ``recording``,
create the file — in that order, so a crash always leaves a row to recover),
append sealed audio, note the answer, close the call, or insert a row without
audio (unanswered, excluded). The queue is bounded in **audio chunks**
(about 0.8 s of one call each); control jobs are tiny and never refused, so
a call's row is always closed. When the audio part is full the capture
thread stops encoding for the calls it cannot hand over and counts the lost
frames (an overrun alarm, see capture.py); with ``wait_when_full`` (only on
simulated time) it waits instead, since simulated time can.

A job that fails is logged and the writer goes on: one bad disk write must
not stop every other line's recording.

On an enrolled appliance the writer also notes, after each job, what the city
archive is now owed (``outbox``: appliance.replication.outbox) — a small
SQLite commit in this thread, never in the capture thread; a failing note is
logged and counted and recording goes on (the next start reconciles).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from appliance.governance.binding import close_record, insert_record
from appliance.governance.ledger import Ledger
from appliance.store.catalog import TOKYO, Catalog, to_utc_text
from appliance.store.datadir import DataDir
from appliance.store.keystore import atomic_write
from appliance.store.recording import RecordingFile

log = logging.getLogger(__name__)

#: default capacity: 1024 chunks ≈ 13 min of one call or 100 s of eight (≈ 3 MB)
DEFAULT_CHUNKS = 1024


@dataclass
class OpenJob:
    call_id: str
    row: dict
    key_id: str
    sealed_key: bytes
    relpath: str


@dataclass
class AppendJob:
    call_id: str
    data: bytes


@dataclass
class UpdateJob:
    call_id: str
    fields: dict


@dataclass
class FinishJob:
    call_id: str
    data: bytes
    fields: dict
    ended_at: datetime
    recorded_s: float
    done: Callable[[dict], None] | None = None


@dataclass
class RowJob:
    """A call row without audio (unanswered, or excluded when its metadata is kept)."""

    row: dict
    at: datetime


@dataclass
class WriterStats:
    jobs: int = 0
    failed: int = 0
    chunks: int = 0
    bytes: int = 0
    max_queued_chunks: int = 0
    seal_failures: int = 0
    errors: list[str] = field(default_factory=list)
    outbox_failed: int = 0


def recording_day(started_at: str):
    """The Japan-time day whose key wraps a recording's data key (retention counts the same)."""
    return datetime.fromisoformat(started_at).astimezone(TOKYO).date()


class Writer:
    """Executes jobs; owns the open files. Not thread-safe: one thread calls ``execute``."""

    def __init__(self, datadir: DataDir, catalog: Catalog,
                 open_file: Callable[[Path], RecordingFile] = RecordingFile,
                 outbox=None, sealer=None) -> None:
        self.datadir = datadir
        self.outbox = outbox      # None: not enrolled
        self.catalog = catalog
        self.ledger = Ledger(catalog)
        self.open_file = open_file
        self.files: dict[str, RecordingFile] = {}
        self.stats = WriterStats()
        #: signs capture statements (store/statements.py); None = no device key configured
        self.sealer = sealer

    def _seal(self, step: Callable[[], None]) -> None:
        """A statement that cannot be signed (TPM gone …) costs its signature, never the audio."""
        try:
            step()
        except Exception as exc:      # noqa: BLE001 — logged and counted; recording goes on
            self.stats.seal_failures += 1
            self.stats.errors.append(f"statement: {exc}")
            del self.stats.errors[:-20]
            log.error("writer: capture statement not signed: %s", exc)

    def tick(self) -> None:
        """Sign the pending statement when a second has passed (the writer's idle wake-up)."""
        if self.sealer is not None and self.sealer.due():
            self._seal(self.sealer.seal)

    def execute(self, job) -> None:
        self.stats.jobs += 1
        try:
            self._do(job)
        except Exception as exc:      # noqa: BLE001 — logged, counted, and the writer goes on
            self.stats.failed += 1
            self.stats.errors.append(f"{type(job).__name__}: {exc}")
            del self.stats.errors[:-20]
            log.exception("writer: %s failed", type(job).__name__)

    def _note(self, method: str, *args) -> None:
        """Tell the outbox (enrolled appliances); its failure never stops recording."""
        if self.outbox is None:
            return
        try:
            getattr(self.outbox, method)(*args)
        except Exception:             # noqa: BLE001 — reconciled at the next start
            self.stats.outbox_failed += 1
            log.exception("writer: outbox %s failed", method)

    def _do(self, job) -> None:
        if isinstance(job, AppendJob):
            f = self.files.get(job.call_id)
            if f is not None:
                offset = f.size
                f.append(job.data)
                self.stats.chunks += 1
                self.stats.bytes += len(job.data)
                self._note("note_chunk", job.call_id, offset, len(job.data))
                if self.sealer is not None:
                    self.sealer.wrote(job.call_id, f)
                    self.tick()
        elif isinstance(job, OpenJob):
            # wrapped under the recording day's key when a TPM is fitted (store/daykeys.py)
            self.datadir.keys.store_data_key(job.key_id, job.sealed_key,
                                             recording_day(job.row["started_at"]))
            self.catalog.insert_call(job.row)
            self.files[job.call_id] = self.open_file(self.datadir.path_of(job.relpath))
            self._note("note_key", job.call_id, job.key_id)
            self._note("note_call", job.call_id)
        elif isinstance(job, UpdateJob):
            self.catalog.update_call(job.call_id, **job.fields)
            self._note("note_call", job.call_id)
        elif isinstance(job, FinishJob):
            self._finish(job)
        elif isinstance(job, RowJob):
            insert_record(self.catalog, job.row, job.at)
            self._note("note_call", job.row["id"])
        else:
            raise TypeError(f"unknown job {job!r}")

    def _finish(self, job: FinishJob) -> None:
        f = self.files.pop(job.call_id, None)
        if f is None:
            return
        offset = f.size
        f.append(job.data)
        self._note("note_chunk", job.call_id, offset, len(job.data))
        if self.sealer is not None:   # signed closed before the row says complete
            self._seal(lambda: self.sealer.closed(job.call_id, f))
        sha = f.close()
        fields = dict(job.fields, size=f.size, sha256=sha, recorded_s=job.recorded_s,
                      ended_at=to_utc_text(job.ended_at))
        # the row and its RECORD entry (key id, size, SHA-256, duration, the fields' digest)
        close_record(self.catalog, job.call_id, fields, job.ended_at)
        self._note("note_call", job.call_id)
        if job.done is not None:
            job.done(fields)

    def flush(self) -> None:
        """Sign whatever was written since the last statement (the writer stops)."""
        if self.sealer is not None:
            self._seal(self.sealer.seal)

    def close_all(self) -> None:
        self.flush()
        for f in self.files.values():
            f.close()
        self.files.clear()


class InlineSink:
    """Runs each job at once in the caller's thread (tools and unit tests; not capture)."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def has_room(self) -> bool:
        return True

    def submit(self, job) -> None:
        self.writer.execute(job)

    submit_audio = submit


class ThreadedSink:
    """A bounded hand-off to a writer thread. ``submit*`` never block unless ``wait_when_full``."""

    def __init__(self, writer: Writer, capacity_chunks: int = DEFAULT_CHUNKS,
                 wait_when_full: bool = False) -> None:
        if not 1 <= capacity_chunks <= 1_000_000:
            raise ValueError("capacity_chunks out of range")
        self.writer = writer
        self.capacity = capacity_chunks
        self.wait_when_full = wait_when_full
        self._q: collections.deque = collections.deque()
        self._chunks = 0
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="appliance-writer", daemon=True)
        self._thread.start()

    def has_room(self) -> bool:
        if self._chunks < self.capacity:
            return True
        if not self.wait_when_full:
            return False
        with self._cv:
            while self._chunks >= self.capacity and self._thread.is_alive():
                self._cv.wait(0.5)
        return True

    def submit(self, job) -> None:
        with self._cv:
            self._q.append(job)
            self._cv.notify_all()

    def submit_audio(self, job: AppendJob) -> None:
        with self._cv:
            self._q.append(job)
            self._chunks += 1
            self.writer.stats.max_queued_chunks = max(self.writer.stats.max_queued_chunks,
                                                      self._chunks)
            self._cv.notify_all()

    @property
    def queued_chunks(self) -> int:
        return self._chunks

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._stop:
                    # wake at least twice a second: the pending statement is signed on time
                    if not self._cv.wait(0.5):
                        break
                if not self._q:
                    if self._stop:
                        break
                    job = None
                else:
                    job = self._q.popleft()
            if job is None:
                self.writer.tick()
                continue
            self.writer.execute(job)
            if isinstance(job, AppendJob):
                with self._cv:
                    self._chunks -= 1
                    self._cv.notify_all()
        self.writer.flush()

    def close(self, timeout: float | None = None) -> bool:
        """Finish every queued job, then stop; True if the writer drained in time."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()
