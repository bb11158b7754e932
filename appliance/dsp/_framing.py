"""Cut a stream of samples into fixed blocks aligned to the first sample fed.

Every block detector in this package works on blocks whose boundaries are
fixed by the absolute sample index, never by how the caller chunks its
audio: that is what makes their results independent of chunking.
"""

from __future__ import annotations

import numpy as np

#: 16-bit samples are clipped here; float input outside this is garbage
_LIMIT = 32768.0


def as_samples(samples) -> np.ndarray:
    """Any 1-D sequence of 16-bit-scale samples as float64, garbage made harmless.

    Non-finite floats become 0 and values are clipped to the 16-bit range, so a
    detector fed random bytes, NaNs or huge numbers never raises and never
    overflows.
    """
    x = np.asarray(samples)
    if x.dtype.kind in "iub":
        return x.reshape(-1).astype(np.float64)
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        x = np.nan_to_num(x, nan=0.0, posinf=_LIMIT, neginf=-_LIMIT)
    return np.clip(x, -_LIMIT, _LIMIT - 1.0)


class BlockBuffer:
    """Holds the tail of the stream that does not yet fill a block."""

    __slots__ = ("size", "_tail", "blocks_done")

    def __init__(self, size: int) -> None:
        self.size = size
        self._tail = np.zeros(0)
        #: number of complete blocks handed out since the last reset
        self.blocks_done = 0

    def reset(self) -> None:
        self._tail = np.zeros(0)
        self.blocks_done = 0

    def push(self, samples) -> tuple[np.ndarray, int]:
        """Add samples; return (complete blocks as rows, index of the first row)."""
        x = as_samples(samples)
        if self._tail.size:
            x = np.concatenate((self._tail, x))
        n = x.size // self.size
        first = self.blocks_done
        if n == 0:
            self._tail = x
            return np.zeros((0, self.size)), first
        cut = n * self.size
        # copy the tail: a view would keep the caller's whole chunk alive
        self._tail = x[cut:].copy()
        self.blocks_done += n
        return x[:cut].reshape(n, self.size), first


class StartsAt:
    """``start_s`` for an event whose ``start`` is a sample index at ``rate``."""

    start: int
    rate: int

    @property
    def start_s(self) -> float:
        return self.start / self.rate


class Spans(StartsAt):
    """``start_s`` and ``end_s`` for an event with ``start`` and ``end`` sample indices."""

    end: int

    @property
    def end_s(self) -> float:
        return self.end / self.rate
