"""The line-interface contract: what the hardware says, and the two things we say back.

A backend turns one telephony device (or a simulated one) into a stream of
:class:`Period`s: every 20 ms, for every line it taps, the far and near legs'
audio, plus the :class:`LineEvent`s that happened in that period. Times are
**sample counts** of the interface's own 8 kHz clock since it was opened, so
the engine can measure "40 ms after answer" exactly, on real hardware and on
the simulator alike.

A line is (trunk, channel): an analog trunk has channel 1; an ISDN trunk has
one channel per B-channel (BRI 1–2, PRI 1–23) and its D-channel frames arrive
as :attr:`EventKind.D_FRAME` events on channel 0. One interface may serve
several devices; a device that vanishes says so (``DEVICE_LOST``) for its
lines and later ``DEVICE_BACK``; its lines' audio is silence meanwhile.

What a backend must provide (like gpiozero's pin factory contract):
``lines``, ``read``, ``play``, ``stop_play``, ``set_loop``, ``close``.
``read`` may block (a real device paces the capture loop); it returns
``None`` when the source has ended (a scenario ran out) and never raises on
bad line input: it reports it as events or as silence.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import numpy as np

from appliance.units import FRAME_SAMPLES, LINE_RATE


class EventKind(StrEnum):
    RING_ON = "ring_on"            # ring detector: ringing voltage present (CAR or IR)
    RING_OFF = "ring_off"
    LOOP_CLOSED = "loop_closed"    # loop current: the staff side went off-hook
    LOOP_OPEN = "loop_open"
    POLARITY = "polarity"          # line polarity reversed (not relied upon: telephony.md §2.4)
    D_FRAME = "d_frame"            # an ISDN D-channel frame (LAPD), ``data`` holds it
    DEVICE_LOST = "device_lost"    # the whole device vanished (USB unplugged …)
    DEVICE_BACK = "device_back"


class LineKind(StrEnum):
    ANALOG = "analog"
    ISDN = "isdn"


@dataclass(frozen=True)
class LineInfo:
    trunk: str
    channel: int
    kind: LineKind
    device: str


@dataclass(frozen=True)
class LineEvent:
    kind: EventKind
    sample: int                     #: when, in samples since the interface opened
    trunk: str | None               #: None: the whole ``device``
    channel: int = 0
    device: str = ""
    data: bytes | None = None       #: D-channel frame bytes

    @property
    def t(self) -> float:
        return self.sample / LINE_RATE


@dataclass(frozen=True)
class Frame:
    """20 ms of one line: the far leg (from the network) and the near leg (staff side)."""

    trunk: str
    channel: int
    sample: int
    far: np.ndarray
    near: np.ndarray


@dataclass
class Period:
    """One capture period: 20 ms of both legs of every line, and its events.

    ``far`` and ``near`` are int16 arrays of shape (len(lines), FRAME_SAMPLES),
    rows in the order of :meth:`LineInterface.lines`. They are only valid
    until the next ``read`` (a backend may reuse its buffers): copy what you keep.
    """

    sample: int                     #: first sample of the period
    far: np.ndarray
    near: np.ndarray
    events: list[LineEvent] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.sample + FRAME_SAMPLES

    def frame(self, row: int, line: "LineInfo") -> Frame:
        return Frame(line.trunk, line.channel, self.sample, self.far[row], self.near[row])


class LineInterface(abc.ABC):
    """A device's lines. Use as a context manager; ``close()`` twice is fine."""

    #: wall-clock time of sample 0 (aware); set when opened
    epoch: datetime

    @abc.abstractmethod
    def lines(self) -> list[LineInfo]:
        """Every line this interface taps, in the row order of :class:`Period`."""

    @abc.abstractmethod
    def read(self) -> Period | None:
        """The next period; may block until it is captured; None at end of source."""

    @abc.abstractmethod
    def play(self, trunk: str, channel: int, samples: np.ndarray) -> int:
        """Send audio towards the caller; returns the sample at which it reaches the line.

        Must not block: the audio is queued for the playback path.
        """

    @abc.abstractmethod
    def stop_play(self, trunk: str, channel: int) -> None:
        """Stop what ``play`` queued on this line (the call ended)."""

    @abc.abstractmethod
    def set_loop(self, trunk: str, channel: int, closed: bool) -> None:
        """Close or open the module's own loop relay towards the network.

        The appliance sits in series and is the Number Display terminal: it
        answers CAR (primary response) and opens the loop again when the FSK
        is received (shared/DESIGN.md, telephony.md §1.1). Analog lines only.
        """

    def close(self) -> None:
        """Release the device; idempotent."""

    def __enter__(self) -> "LineInterface":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
