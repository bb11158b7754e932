"""Two-leg Ogg Opus recordings (RFC 7845): encoder, page schedule, reader.

Digest: one logical stream; page 1 holds only ``OpusHead`` (BOS, granule 0),
page 2 only ``OpusTags`` (granule 0); audio pages carry the 48 kHz granule
position of the last packet that ends on them, counting the pre-skip. The
EOS page may carry a smaller granule than its packets decode to: that trims
the padding frame the writer adds so that the last real samples survive the
encoder's look-ahead.

Why channel mapping family 1 with two uncoupled streams: plain stereo at
16 kbit/s downmixes to mono (measured: 0 dB separation between the legs).
Two mono streams keep the far party (left, channel 0) and the staff side
(right, channel 1) apart (measured here: about 90 dB).

The writer never touches a file: it returns page bytes from ``flush()`` so
that the caller (the sealed-file writer) decides where they go and when.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass, field

import numpy as np
import opuslib_next as opus

from appliance.errors import OggError
from appliance.store import ogg
from appliance.units import FRAME_SAMPLES, LINE_RATE

GRANULE_RATE = 48000
GRANULE_PER_FRAME = FRAME_SAMPLES * GRANULE_RATE // LINE_RATE  # 960
_FRAME_SHAPE = (FRAME_SAMPLES,)
CHANNELS = 2           # 0 = far party (left), 1 = near / staff side (right)
MAPPING_FAMILY = 1
STREAMS, COUPLED = 2, 0
VENDOR = "appliance call recorder (libopus via opuslib-next)"
#: what opuslib-next passes as max_data_bytes (the PCM buffer's length): kept, so
#: that the encoder's decisions, and so the packets, stay the same
_MAX_PACKET = FRAME_SAMPLES * CHANNELS * 2

# Our own handle on the library opuslib-next found, so that setting argtypes here
# does not touch its function objects. The encoder state still comes from
# opuslib-next; only the per-frame call is direct: it writes into buffers made
# once per recording instead of a new PCM bytes object, a new output buffer and
# two copies of the packet per 20 ms frame. Like every ctypes call it releases
# the GIL while libopus works.
_ms_encode = ctypes.CDLL(opus.api.lib_location).opus_multistream_encode
_ms_encode.argtypes = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                       ctypes.c_int32)
_ms_encode.restype = ctypes.c_int32


@dataclass(frozen=True)
class EncoderSettings:
    """Encoder configuration (``[encoder]`` in appliance.toml)."""

    bitrate_per_leg: int = 16000   # bit/s for each leg's stream
    complexity: int = 5            # 0..10; the measured cost is about 1 : 2.2 : 3.9 for 0 : 5 : 10
    #: frames per page: 40 × 20 ms = 0.8 s, a page at least once a second with margin for jitter
    frames_per_page: int = 40
    #: frames a recording stages before the capture loop encodes them back to back:
    #: the encoder's state is then warm in the caches for all but the first
    #: (docs/performance.md). A frame that completes a page is encoded at once,
    #: so pages, and the time they reach the disk, do not move.
    frames_per_encode: int = 5
    #: threads that encode besides the capture thread; 0 = one per further CPU core
    helper_threads: int = 0

    def __post_init__(self) -> None:
        if not 6000 <= self.bitrate_per_leg <= 256000:
            raise ValueError("bitrate_per_leg must be within 6000..256000 bit/s")
        if not 0 <= self.complexity <= 10:
            raise ValueError("complexity must be within 0..10")
        if not 1 <= self.frames_per_page <= 50:
            raise ValueError("frames_per_page must be within 1..50 (a page at least every second)")
        if not 1 <= self.frames_per_encode <= 10:
            raise ValueError("frames_per_encode must be within 1..10")
        if not 0 <= self.helper_threads <= 16:
            raise ValueError("helper_threads must be within 0..16 (0 = one per further core)")


def opus_head(pre_skip: int, input_rate: int = LINE_RATE) -> bytes:
    return (b"OpusHead" + struct.pack("<BBHIhB", 1, CHANNELS, pre_skip, input_rate, 0, MAPPING_FAMILY)
            + bytes([STREAMS, COUPLED, 0, 1]))


def opus_tags(tags: dict[str, str]) -> bytes:
    vendor = VENDOR.encode()
    out = [b"OpusTags", struct.pack("<I", len(vendor)), vendor, struct.pack("<I", len(tags))]
    for key, value in tags.items():
        entry = f"{key.upper()}={value}".encode()
        out += [struct.pack("<I", len(entry)), entry]
    return b"".join(out)


class OggOpusWriter:
    """Encodes 20 ms frames of both legs into Ogg Opus pages.

    ``write(far, near)`` takes 160 int16 samples per leg and returns the pages
    it finished (a page is cut every ``frames_per_page`` frames, or earlier
    when the lacing table would overflow); ``flush()`` cuts a page now and
    returns it; ``close()`` returns the final pages including the EOS page.
    """

    def __init__(self, serial: int, tags: dict[str, str],
                 settings: EncoderSettings = EncoderSettings()) -> None:
        self.settings = settings
        self._enc = opus.MultiStreamEncoder(LINE_RATE, CHANNELS, STREAMS, COUPLED, [0, 1], "voip")
        self._enc.bitrate = settings.bitrate_per_leg * STREAMS
        self._enc.complexity = settings.complexity
        self._enc.signal = opus.SIGNAL_VOICE
        self.pre_skip = self._enc.lookahead * (GRANULE_RATE // LINE_RATE)
        self._state = ctypes.cast(self._enc.msencoder_state, ctypes.c_void_p)
        # staged frames, each with its legs interleaved, back to back
        self._pcm = np.zeros((settings.frames_per_encode, FRAME_SAMPLES, CHANNELS), dtype="<i2")
        self._pcm_ptr = self._pcm.ctypes.data
        self._frame_bytes = FRAME_SAMPLES * CHANNELS * 2
        #: frames staged and not yet encoded; no room for another (encode first)
        self.staged = 0
        self.stage_full = False
        self._per_encode = settings.frames_per_encode
        self._per_page = settings.frames_per_page
        # each slot's two legs as views made once: staging is two plain copies
        self._far_slots = [self._pcm[k, :, 0] for k in range(settings.frames_per_encode)]
        self._near_slots = [self._pcm[k, :, 1] for k in range(settings.frames_per_encode)]
        self._packet = ctypes.create_string_buffer(_MAX_PACKET)
        self._serial = serial & 0xFFFFFFFF
        self._seq = 0
        # 48 kHz samples the packets so far decode to (the pre-skip is inside them)
        self._granule = 0
        self._real_granule = 0                 # the same, without the closing padding frame
        self._pending: list[bytes] = []
        self._pending_segments = 0
        self._out: list[bytes] = [self._page([opus_head(self.pre_skip)], granule=0, bos=True),
                                  self._page([opus_tags(tags)], granule=0)]
        self.frames = 0
        self.closed = False

    def _page(self, packets: list[bytes], *, granule: int, bos: bool = False,
              eos: bool = False) -> bytes:
        page = ogg.build_page(packets, serial=self._serial, sequence=self._seq,
                              granule=granule, bos=bos, eos=eos)
        self._seq += 1
        return page

    def _cut(self, eos: bool = False, granule: int | None = None) -> None:
        if self._pending or eos:
            self._out.append(self._page(self._pending, granule=self._granule if granule is None
                                        else granule, eos=eos))
            self._pending, self._pending_segments = [], 0

    def _encode(self, far: np.ndarray, near: np.ndarray) -> bytes:
        if self.staged:
            raise ValueError("frames are staged: encode them first")
        self.stage(far, near)
        return self.encode_staged()[0]

    def stage(self, far: np.ndarray, near: np.ndarray) -> bool:
        """Copy one frame of both legs into this writer's own PCM buffer (holds the GIL).

        Returns True when the staged frames are due now: the buffer is full, or
        the last one completes a page (which must not wait for the next batch).
        """
        if far.shape != _FRAME_SHAPE or near.shape != _FRAME_SHAPE:
            # libopus reads past a short buffer without checking: refuse it here
            raise ValueError(f"each leg needs exactly {FRAME_SAMPLES} samples per frame")
        k = self.staged
        if self.stage_full:
            raise ValueError("no room for another staged frame: encode the staged ones first")
        self._far_slots[k][...] = far
        self._near_slots[k][...] = near
        self.staged = k = k + 1
        self.stage_full = full = k >= self._per_encode
        return full or len(self._pending) + k >= self._per_page

    def encode_staged(self) -> list[bytes]:
        """The staged frames' Opus packets, in order. Touches only this writer's
        buffers and libopus (which runs without the GIL), so different
        recordings may encode in different threads at once; ``add_packet`` then
        orders the pages."""
        packets = []
        ptr, step = self._pcm_ptr, self._frame_bytes
        for k in range(self.staged):
            n = _ms_encode(self._state, ptr + k * step, FRAME_SAMPLES, self._packet, _MAX_PACKET)
            if n < 0:
                self.staged, self.stage_full = 0, False
                raise opus.OpusError(n)
            packets.append(ctypes.string_at(self._packet, n))
        self.staged, self.stage_full = 0, False
        return packets

    def _add(self, packet: bytes) -> None:
        segments = len(packet) // 255 + 1
        if self._pending_segments + segments > ogg.MAX_SEGMENTS:
            self._cut()
        self._pending.append(packet)
        self._pending_segments += segments
        self._granule += GRANULE_PER_FRAME

    def write(self, far: np.ndarray, near: np.ndarray) -> bytes:
        """Encode one frame; returns the pages finished by it (usually b"")."""
        if self.closed:
            raise ValueError("writer is closed")
        return self.add_packet(self._encode(np.asarray(far, dtype=np.int16),
                                            np.asarray(near, dtype=np.int16)))

    def add_packet(self, packet: bytes) -> bytes:
        """Append the next frame's packet (from ``encode_staged``); returns finished pages."""
        if self.closed:
            raise ValueError("writer is closed")
        self._add(packet)
        self.frames += 1
        self._real_granule = self._granule
        if len(self._pending) >= self._per_page:
            self._cut()
        return self._take() if self._out else b""

    def _take(self) -> bytes:
        out, self._out = b"".join(self._out), []
        return out

    def flush(self) -> bytes:
        """Cut a page now (if any packet waits) and return every finished page."""
        self._cut()
        return self._take()

    def close(self) -> bytes:
        """Encode one padding frame, end the stream with EOS, return the last pages."""
        if self.closed:
            return b""
        silence = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        # the look-ahead holds back pre_skip samples: one more frame releases them,
        # and the EOS granule trims the padding off again
        self._add(self._encode(silence, silence))
        self._cut(eos=True, granule=self._real_granule + self.pre_skip)
        self.closed = True
        return self._take()

    @property
    def duration_s(self) -> float:
        return self.frames * FRAME_SAMPLES / LINE_RATE


@dataclass
class DecodedRecording:
    far: np.ndarray            # int16 at 8 kHz, the far party (left)
    near: np.ndarray           # int16 at 8 kHz, the staff side (right)
    tags: dict[str, str]
    pre_skip: int
    input_rate: int
    truncated: bool            # no EOS page: the stream was cut
    damaged_pages: int
    pages: int
    comments: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return len(self.far) / LINE_RATE


def parse_head(packet: bytes) -> tuple[int, int, int]:
    """(channels, pre_skip, input_rate) of an OpusHead, OggError if it is not one."""
    if len(packet) < 19 or not packet.startswith(b"OpusHead"):
        raise OggError("no OpusHead: not an Ogg Opus stream")
    version, channels, pre_skip, rate, _gain, family = struct.unpack_from("<BBHIhB", packet, 8)
    if version >> 4 != 0:
        raise OggError(f"unsupported OpusHead version {version}")
    if channels != CHANNELS or family != MAPPING_FAMILY or len(packet) < 23 \
            or packet[19:23] != bytes([STREAMS, COUPLED, 0, 1]):
        raise OggError("not a two-leg recording (2 uncoupled streams, mapping family 1)")
    return channels, pre_skip, rate


def parse_tags(packet: bytes) -> dict[str, str]:
    if not packet.startswith(b"OpusTags"):
        raise OggError("no OpusTags packet")
    try:
        (vlen,) = struct.unpack_from("<I", packet, 8)
        pos = 12 + vlen
        (count,) = struct.unpack_from("<I", packet, pos)
        pos += 4
        tags: dict[str, str] = {}
        for _ in range(min(count, 1000)):
            (n,) = struct.unpack_from("<I", packet, pos)
            entry = packet[pos + 4:pos + 4 + n].decode("utf-8", "replace")
            pos += 4 + n
            key, _, value = entry.partition("=")
            tags[key.upper()] = value
    except struct.error:
        raise OggError("truncated OpusTags packet") from None
    return tags


def read_recording(data: bytes) -> DecodedRecording:
    """Decode a two-leg Ogg Opus file, recovering every complete page of a cut one."""
    if not data.startswith(ogg.CAPTURE):
        raise OggError("not an Ogg file (no 'OggS' at the start)")
    scan = ogg.scan_pages(data)
    packets: list[tuple[bytes, ogg.Page]] = [(p, page) for page in scan.pages for p in page.packets]
    if len(packets) < 2:
        raise OggError("truncated header: OpusHead and OpusTags are not both complete")
    _, pre_skip, rate = parse_head(packets[0][0])
    tags = parse_tags(packets[1][0])
    dec = opus.MultiStreamDecoder(LINE_RATE, CHANNELS, STREAMS, COUPLED, [0, 1])
    pcm: list[np.ndarray] = []
    eos_granule = None
    for packet, page in packets[2:]:
        try:
            out = dec.decode(packet, FRAME_SAMPLES * 6)  # up to 120 ms per packet
        except opus.OpusError as exc:
            raise OggError(f"undecodable Opus packet in page {page.sequence}: {exc}") from None
        pcm.append(np.frombuffer(out, dtype="<i2").reshape(-1, CHANNELS))
        if page.eos:
            eos_granule = page.granule
    both = np.concatenate(pcm) if pcm else np.zeros((0, CHANNELS), dtype=np.int16)
    skip = pre_skip * LINE_RATE // GRANULE_RATE
    if eos_granule is not None:
        end = max(0, (eos_granule * LINE_RATE) // GRANULE_RATE)
        both = both[:end]
    both = both[skip:]
    truncated = eos_granule is None or scan.trailing_bytes > 0
    return DecodedRecording(
        far=both[:, 0].copy(), near=both[:, 1].copy(), tags=tags, pre_skip=pre_skip,
        input_rate=rate, truncated=truncated, damaged_pages=scan.damaged, pages=len(scan.pages))
