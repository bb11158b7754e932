"""Was the notice heard on the line? The near leg's projection onto what was played.

The notice is injected towards the caller; the hybrid's near leg (towards
the network) carries it together with whatever the staff say. Projecting
the near leg onto the known notice, over the samples actually played,
gives the notice's gain on the line: about 1 when it went out, about 0
when the injection path is broken, whatever the staff say meanwhile (their
speech is uncorrelated with the notice). ``heard`` when the gain is above
``min_gain`` (−6 dB by default) over at least ``min_ms`` of loud notice.

Zero lag: the interface reports the sample at which playback reaches the
line (tapi contract). A real hybrid's echo path adds delay and colour; the
hardware issue will widen this to a short lag search.
"""

from __future__ import annotations

import numpy as np

from appliance.units import LINE_RATE


class NoticeCheck:
    def __init__(self, reference: np.ndarray, start: int, min_gain: float = 0.5,
                 min_ms: float = 200.0) -> None:
        # the reference is kept as given (the engine shares one read-only int16
        # notice between all calls) and converted a slice at a time: a float64 copy
        # per call would cost 8 bytes a sample, about 0.6 MB a call for a 9.5 s notice
        self.ref = np.asarray(reference)
        self.start = start
        self.end = start + self.ref.size     # first sample after the notice
        self.min_gain = min_gain
        ref = self.ref.astype(np.float64)
        self.min_energy = float(np.mean(ref ** 2)) * min_ms * LINE_RATE / 1000.0
        self.cross = 0.0
        self.energy = 0.0

    def feed(self, sample: int, near) -> None:
        """``near`` begins at absolute ``sample``; parts outside the playback are ignored."""
        if sample >= self.end:
            return          # most of a call: the notice is over
        lo = max(sample, self.start)
        hi = min(sample + np.size(near), self.end)
        if lo >= hi:
            return
        r = np.asarray(self.ref[lo - self.start:hi - self.start], np.float64)
        x = np.asarray(near, np.float64).reshape(-1)[lo - sample:hi - sample]
        self.cross += float(r @ x)
        self.energy += float(r @ r)

    @property
    def gain(self) -> float:
        return self.cross / self.energy if self.energy > 0 else 0.0

    @property
    def heard(self) -> bool:
        return self.energy >= self.min_energy and self.gain >= self.min_gain
