"""One call's recording: encode, seal, append, close; and crash recovery.

The work is split on purpose: :class:`RecordingEncoder` turns 20 ms frames
into sealed bytes and does no I/O (it may run in the capture thread), while
:class:`RecordingFile` appends those bytes and forces them to storage (it runs
in a writer thread). A chunk leaves the encoder at least once a second, so a
power cut or ``kill -9`` costs at most the last second (R16).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from appliance.errors import SealedFileError
from appliance.store import sealed
from appliance.store.opus import EncoderSettings, OggOpusWriter
from appliance.units import FRAME_SAMPLES, LINE_RATE


@dataclass(frozen=True)
class CallTags:
    """What a recording says about itself (OpusTags): no numbers, ever."""

    call_id: str
    site: str
    trunk: str
    channel: int
    started_at: datetime

    def as_tags(self) -> dict[str, str]:
        return {
            "CALL_ID": self.call_id, "SITE": self.site, "TRUNK": self.trunk,
            "CHANNEL": str(self.channel), "DATE": self.started_at.isoformat(timespec="seconds"),
            "LEFT": "far party", "RIGHT": "near (staff) side",
        }


class RecordingEncoder:
    """Frames in, sealed bytes out. ``write`` returns b"" until a page is due."""

    def __init__(self, tags: CallTags, key_id: str, data_key: bytes,
                 settings: EncoderSettings = EncoderSettings()) -> None:
        serial = int.from_bytes(hashlib.sha256(tags.call_id.encode()).digest()[:4], "little")
        self._ogg = OggOpusWriter(serial, tags.as_tags(), settings)
        self._seal = sealed.SealingEncoder(tags.call_id, key_id, data_key)
        self.frames = 0
        self.stage = self._ogg.stage
        self.encode_staged = self._ogg.encode_staged

    def start(self) -> bytes:
        """File header and the Opus header pages: a valid stream from the first second."""
        return self._seal.chunk(self._ogg.flush(), 0)

    def write(self, far: np.ndarray, near: np.ndarray) -> bytes:
        return self.add_packet(self._ogg._encode(np.asarray(far, dtype=np.int16),
                                                 np.asarray(near, dtype=np.int16)))

    # ``write`` in three steps, so that the GIL-free middle one can run in another
    # thread (engine/encoding.py): stage and add_packet(s) hold the GIL and keep order.
    # stage(far, near) -> due and encode_staged() -> packets are the Ogg writer's own
    # (bound in __init__: the capture loop calls them for every frame).

    @property
    def staged(self) -> int:
        return self._ogg.staged

    @property
    def stage_full(self) -> bool:
        return self._ogg.stage_full

    def add_packets(self, packets: list[bytes]) -> list[bytes]:
        """``add_packet`` for each, in order: the sealed chunks they finished."""
        ogg, seal, out = self._ogg, self._seal, []
        for packet in packets:
            pages = ogg.add_packet(packet)
            self.frames += 1
            if pages:
                out.append(seal.chunk(pages, self.frames * FRAME_SAMPLES))
        return out

    def add_packet(self, packet: bytes) -> bytes:
        pages = self._ogg.add_packet(packet)
        self.frames += 1
        return self._seal.chunk(pages, self.samples) if pages else b""

    def close(self) -> bytes:
        return self._seal.chunk(self._ogg.close(), self.samples, final=True)

    @property
    def samples(self) -> int:
        return self.frames * FRAME_SAMPLES

    @property
    def duration_s(self) -> float:
        return self.samples / LINE_RATE


class RecordingFile:
    """Appends sealed bytes to one file and forces them to storage."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a recording is never overwritten
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()

    def append(self, data: bytes) -> None:
        if not data:
            return
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        os.fdatasync(self._fd)
        self._hash.update(data)
        self.size += len(data)

    def running_sha256(self) -> str:
        """The SHA-256 of the bytes written so far (signed capture statements)."""
        return self._hash.copy().hexdigest()

    def close(self) -> str:
        """Close and return the SHA-256 of everything written."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        return self._hash.hexdigest()


@dataclass(frozen=True)
class Recovered:
    size: int
    sha256: str
    recorded_s: float
    complete: bool


def inspect_file(path: Path) -> Recovered:
    """Hash and measure a recording from its clear framing (no key needed)."""
    data = path.read_bytes()
    try:
        layout = sealed.read_layout(data)
        recorded, complete = layout.samples / LINE_RATE, layout.complete
    except SealedFileError:
        recorded, complete = 0.0, False   # cut inside its header: nothing recoverable
    return Recovered(len(data), hashlib.sha256(data).hexdigest(), recorded, complete)
