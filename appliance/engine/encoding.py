"""Opus encoding at the end of capture periods, in batches, on every core.

The capture thread runs every line's state machine first — events, detectors,
the notice — and only *stages* each recording's frame (a copy into that
recording's own PCM buffer). A recording's staged frames are encoded when they
are *due*: in one period out of ``frames_per_encode`` (its *slot*), or at once
when a frame completes an Ogg page or the buffer is full. At the end of the
period :meth:`PeriodEncoder.run` encodes every due recording's frames back to
back, split by frames between the capture thread and the helper threads (one
per further core unless ``[encoder] helper_threads`` says otherwise). libopus
runs through ctypes, which releases the GIL, so the parts really run at once. The packets are then handed to their recordings in the
order they became due, in the capture thread, so pages, sealed chunks and
writer jobs come out exactly as if each frame had been encoded on the spot.

Why this shape (docs/performance.md):

* encoding is about four fifths of the capture thread's work. Deferring it to
  the period's end lets a call's answer reach ``play`` before the other calls'
  audio is encoded, and splitting it uses the other cores without letting two
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
  even when many calls start in the same period; such calls still complete
  their pages together, so one period in ``frames_per_page`` may carry up to
  ``frames_per_encode`` times its share (bounded: one batch a call).

No allocation per frame beyond the packet itself; the helper threads wait on
a condition, never poll, and never touch disk, catalog or network.
"""

from __future__ import annotations

import threading

#: below this many frames the hand-over to the helpers costs more than it saves
MIN_SPLIT = 4


def _encode_all(recs: list) -> list:
    """Each recording's packets, or the exception its encoder raised."""
    out: list = []
    for rec in recs:
        try:
            out.append(rec.encoder.encode_staged())
        except Exception as exc:         # noqa: BLE001 — one recording's fault is its own
            out.append(exc)
    return out


class PeriodEncoder:
    def __init__(self, frames_per_encode: int = 1, helpers: int = 1) -> None:
        if frames_per_encode < 1 or helpers < 1:
            raise ValueError("frames_per_encode and helpers must be at least 1")
        self.frames_per_encode = frames_per_encode
        self.helpers = helpers
        self.period = 0                   # periods run so far
        self._next_slot = 0
        self._due: list = []              # recordings due this period, in order
        self._cv = threading.Condition()
        # per helper: its part of the period's work (None: idle), then its results
        self._work: list[list | None] = [None] * helpers
        self._packets: list[list] = [[] for _ in range(helpers)]
        self._errors: list[BaseException | None] = [None] * helpers
        self._stop = False
        self._threads: list[threading.Thread] = []

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

    def _helper(self, i: int) -> None:
        while True:
            with self._cv:
                while self._work[i] is None and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                work = self._work[i]
            try:
                packets, error = _encode_all(work), None
            except BaseException as exc:     # noqa: BLE001 — handed to the capture thread
                packets, error = [], exc
            with self._cv:
                self._packets[i], self._errors[i], self._work[i] = packets, error, None
                self._cv.notify_all()

    @staticmethod
    def _cuts(counts: list[int], parts: int) -> list[int]:
        """Where to cut the due list into ``parts`` runs of about equal frames."""
        total, cuts, acc, k = sum(counts), [0], 0, 1
        for i, c in enumerate(counts):
            acc += c
            while k < parts and acc * parts >= k * total and i + 1 > cuts[-1]:
                cuts.append(i + 1)
                k += 1
        while len(cuts) < parts + 1:
            cuts.append(len(counts))
        cuts[-1] = len(counts)
        return cuts

    def run(self) -> None:
        """Encode every due recording's frames; deliver the packets in order."""
        self.period += 1
        due, self._due = self._due, []
        if not due:
            return
        for rec in due:
            rec._queued = False       # out of the queue, whatever happens below
        counts = [rec.encoder.staged for rec in due]
        parts = min(self.helpers + 1, len(due))
        if sum(counts) < MIN_SPLIT or parts < 2:
            self._hand_out(due, _encode_all(due))
            return
        if not self._threads:
            self._stop = False
            self._threads = [threading.Thread(target=self._helper, args=(i,), daemon=True,
                                              name=f"appliance-encoder-{i + 1}")
                             for i in range(self.helpers)]
            for t in self._threads:
                t.start()
        cuts = self._cuts(counts, parts)
        used = parts - 1
        with self._cv:
            for i in range(used):
                self._work[i] = due[cuts[i + 1]:cuts[i + 2]]
            self._cv.notify_all()
        mine = _encode_all(due[:cuts[1]])
        with self._cv:
            while any(self._work[i] is not None for i in range(used)):
                self._cv.wait()
            results, errors = self._packets[:used], self._errors[:used]
            for i in range(used):
                self._packets[i], self._errors[i] = [], None
        for i, error in enumerate(errors):
            # a helper that failed as a whole: its recordings lose this batch
            mine.extend(results[i] if error is None else [error] * (cuts[i + 2] - cuts[i + 1]))
        self._hand_out(due, mine)

    @staticmethod
    def _hand_out(due: list, results: list) -> None:
        """Deliver every recording's packets; a recording whose encoding failed
        loses its batch alone, and the first failure is raised afterwards (the
        capture loop counts it and raises an alarm)."""
        failed = None
        for rec, packets in zip(due, results):
            if isinstance(packets, BaseException):
                failed = failed or packets
            else:
                rec._deliver(packets)
        if failed is not None:
            raise failed

    def close(self) -> None:
        """Stop the helper threads; idempotent. Due frames are encoded first."""
        self.run()
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join()
        self._threads = []
