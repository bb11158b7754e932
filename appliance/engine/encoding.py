"""Opus encoding of one capture period on both cores.

The capture thread runs every line's state machine first — events, detectors,
the notice — and only *stages* each recording's frame (a copy into that
recording's own PCM buffer). At the end of the period :meth:`PeriodEncoder.run`
encodes every staged frame: half in a helper thread, half in the capture
thread. libopus runs through ctypes, which releases the GIL, so the halves
really run at once. The packets are then handed to their recordings in the
order they were staged, in the capture thread, so pages, sealed chunks and
writer jobs come out exactly as if each frame had been encoded on the spot.

Why this shape: encoding is about three quarters of the capture thread's work
(docs/performance.md). Deferring it to the period's end lets a call's answer
reach ``play`` before the other calls' audio is encoded, and splitting it
uses the second core without letting two threads touch one encoder: each
recording has one staged frame at most, and a recording that needs its
packets earlier (finish, commit, a second frame in one period) settles itself
synchronously first (recorder.py).

No allocation per frame beyond the packet itself; the helper thread waits on
a condition, never polls, and never touches disk, catalog or network.
"""

from __future__ import annotations

import threading

#: below this many frames the hand-over to the helper costs more than it saves
MIN_SPLIT = 4


class PeriodEncoder:
    def __init__(self) -> None:
        self._staged: list = []           # recordings with a staged frame, in order
        self._cv = threading.Condition()
        self._work: list | None = None
        self._packets: list = []
        self._error: BaseException | None = None
        self._stop = False
        self._thread: threading.Thread | None = None

    def add(self, rec) -> None:
        self._staged.append(rec)

    def remove(self, rec) -> None:
        self._staged = [r for r in self._staged if r is not rec]

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
        """Encode every staged frame and deliver the packets in staging order."""
        staged, self._staged = self._staged, []
        if not staged:
            return
        if len(staged) < MIN_SPLIT:
            for rec in staged:
                rec._deliver(rec.encoder.encode_staged())
            return
        if self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._helper, name="appliance-encoder",
                                            daemon=True)
            self._thread.start()
        half = len(staged) // 2
        with self._cv:
            self._work = staged[half:]
            self._cv.notify_all()
        mine = [rec.encoder.encode_staged() for rec in staged[:half]]
        with self._cv:
            while self._work is not None:
                self._cv.wait()
            theirs, error = self._packets, self._error
            self._packets, self._error = [], None
        if error is not None:
            raise error
        for rec, packet in zip(staged, mine + theirs):
            rec._deliver(packet)

    def close(self) -> None:
        """Stop the helper thread; idempotent. Staged frames are encoded first."""
        self.run()
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
