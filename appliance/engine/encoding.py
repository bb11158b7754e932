"""Opus encoding at the end of capture periods, in batches, on both cores.

The capture thread runs every line's state machine first — events, detectors,
the notice — and only *stages* each recording's frame (a copy into that
recording's own PCM buffer). A recording's staged frames are encoded when they
are *due*: in one period out of ``frames_per_encode`` (its *slot*), or at once
when a frame completes an Ogg page or the buffer is full. At the end of the
period :meth:`PeriodEncoder.run` encodes every due recording's frames back to
back: about half of the frames in a helper thread, the rest in the capture
thread. libopus runs through ctypes, which releases the GIL, so the halves
really run at once. The packets are then handed to their recordings in the
order they became due, in the capture thread, so pages, sealed chunks and
writer jobs come out exactly as if each frame had been encoded on the spot.

Why this shape (docs/performance.md):

* encoding is about four fifths of the capture thread's work. Deferring it to
  the period's end lets a call's answer reach ``play`` before the other calls'
  audio is encoded, and splitting it uses the second core without letting two
  threads touch one encoder (a recording is due at most once a period; one
  that needs its packets earlier — finish, commit — settles itself first).
* encoding a recording's frames back to back keeps its encoder's state warm in
  the caches: between two periods the interpreter and numpy have run over
  every other line. The first frame of a batch pays for it, the others do not.
* a frame that completes a page is due at once, so a page reaches the writer
  in the period of its last frame, as before: batching adds no latency to
  what is durable. Staged frames not yet encoded are in memory only, like the
  packets of an unfinished page.
* slots are handed out in turn, so the work is spread evenly over periods
  even when many calls start in the same period.

No allocation per frame beyond the packet itself; the helper thread waits on
a condition, never polls, and never touches disk, catalog or network.
"""

from __future__ import annotations

import threading

#: below this many frames the hand-over to the helper costs more than it saves
MIN_SPLIT = 4


class PeriodEncoder:
    def __init__(self, frames_per_encode: int = 1) -> None:
        if frames_per_encode < 1:
            raise ValueError("frames_per_encode must be at least 1")
        self.frames_per_encode = frames_per_encode
        self.period = 0                   # periods run so far
        self._next_slot = 0
        self._due: list = []              # recordings due this period, in order
        self._cv = threading.Condition()
        self._work: list | None = None
        self._packets: list = []
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    def next_slot(self) -> int:
        """A new recording's slot: the recordings take the slots in turn."""
        slot = self._next_slot
        self._next_slot = (slot + 1) % self.frames_per_encode
        return slot

    def due(self, slot: int) -> bool:
        """Whether a recording with this slot encodes its staged frames this period."""
        return (self.period + slot) % self.frames_per_encode == 0

    def add(self, rec) -> None:
        self._due.append(rec)

    def remove(self, rec) -> None:
        self._due = [r for r in self._due if r is not rec]

    def _helper(self) -> None:
        while True:
            with self._cv:
                while self._work is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                work = self._work
            try:
                packets = [rec.encoder.encode_staged() for rec in work]
                error = None
            except BaseException as exc:     # noqa: BLE001 — handed to the capture thread
                packets, error = [], exc
            with self._cv:
                self._packets, self._error, self._work = packets, error, None
                self._cv.notify_all()

    def run(self) -> None:
        """Encode every due recording's frames; deliver the packets in order."""
        self.period += 1
        due, self._due = self._due, []
        if not due:
            return
        for rec in due:
            rec._queued = False       # out of the queue, whatever happens below
        counts = [rec.encoder.staged for rec in due]
        total = sum(counts)
        if total < MIN_SPLIT or len(due) < 2:
            for rec in due:
                rec._deliver(rec.encoder.encode_staged())
            return
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._helper, name="appliance-encoder",
                                            daemon=True)
            self._thread.start()
        # split where the frames, not the recordings, are halved
        half, acc = len(due) - 1, 0
        for i, c in enumerate(counts):
            acc += c
            if 2 * acc >= total:
                half = max(1, min(i + 1, len(due) - 1))
                break
        with self._cv:
            self._work = due[half:]
            self._cv.notify_all()
        mine = [rec.encoder.encode_staged() for rec in due[:half]]
        with self._cv:
            while self._work is not None:
                self._cv.wait()
            theirs, error = self._packets, self._error
            self._packets, self._error = [], None
        if error is not None:
            raise error
        for rec, packets in zip(due, mine + theirs):
            rec._deliver(packets)

    def close(self) -> None:
        """Stop the helper thread; idempotent. Due frames are encoded first."""
        self.run()
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
