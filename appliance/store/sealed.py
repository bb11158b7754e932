"""Sealed recording files: the Ogg bytes in authenticated chunks (R9, R16).

Layout (format 1)::

    magic   8 bytes  b"ACRSEAL\\0"
    version 1 byte   1
    hlen    2 bytes  little-endian length of the JSON header
    header  hlen     UTF-8 JSON: {"format": 1, "call_id": …, "key_id": …}
    stream  24 bytes libsodium secretstream (XChaCha20-Poly1305) header
    chunk*           frame (13 bytes, clear) + ciphertext
        clen        4 bytes  ciphertext length
        samples_end 8 bytes  8 kHz samples of audio covered up to this chunk's end
        flags       1 byte   0x01 = final chunk (the recording was closed)

The clear frame lets anyone walk the file without a key (``verify`` and
crash recovery need the duration and completeness), and it is bound into
each chunk's additional data together with a digest of the file header, so
changing a frame, the header, or any ciphertext byte fails decryption.
Secretstream also fails on reordered, dropped or duplicated chunks. A cut
file yields every complete chunk. The data key is never in this file: it is
sealed to the archive public key in the key store, so erasing the key makes
the file noise (R8).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass

from nacl import bindings as sodium
from nacl.exceptions import CryptoError

from appliance.errors import SealedFileError

MAGIC = b"ACRSEAL\x00"
FORMAT = 1
FRAME = struct.Struct("<IQB")
FLAG_FINAL = 0x01
KEY_BYTES = sodium.crypto_secretstream_xchacha20poly1305_KEYBYTES
STREAM_HEADER_BYTES = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
_TAG_FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL
_TAG_MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
MAX_CHUNK = 16 * 1024 * 1024  # a second of audio is a few kB; anything near this is damage


def _file_header(call_id: str, key_id: str) -> bytes:
    meta = json.dumps({"format": FORMAT, "call_id": call_id, "key_id": key_id},
                      sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + bytes([FORMAT]) + struct.pack("<H", len(meta)) + meta


class SealingEncoder:
    """Turns groups of Ogg pages into sealed chunks; does no file I/O.

    It holds the data key only for as long as the recording is open; the
    caller sealed a copy of it to the archive public key beforehand.
    """

    def __init__(self, call_id: str, key_id: str, data_key: bytes) -> None:
        if len(data_key) != KEY_BYTES:
            raise ValueError("data key must be 32 bytes")
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        stream_header = sodium.crypto_secretstream_xchacha20poly1305_init_push(self._state, data_key)
        head = _file_header(call_id, key_id)
        self._head_digest = hashlib.sha256(head).digest()
        self._pending_header = head + stream_header
        self.closed = False

    def chunk(self, payload: bytes, samples_end: int, final: bool = False) -> bytes:
        """The bytes to append to the file for ``payload`` (file header first, once)."""
        if self.closed:
            raise ValueError("sealed stream is closed")
        flags = FLAG_FINAL if final else 0
        clen = len(payload) + sodium.crypto_secretstream_xchacha20poly1305_ABYTES
        frame = FRAME.pack(clen, samples_end, flags)
        ct = sodium.crypto_secretstream_xchacha20poly1305_push(
            self._state, payload, self._head_digest + frame, _TAG_FINAL if final else _TAG_MESSAGE)
        out = self._pending_header + frame + ct
        self._pending_header = b""
        if final:
            self.closed = True
        return out


@dataclass(frozen=True)
class ChunkInfo:
    offset: int
    clen: int
    samples_end: int
    final: bool


@dataclass(frozen=True)
class SealedLayout:
    """What can be read from a sealed file without its key."""

    call_id: str
    key_id: str
    chunks: tuple[ChunkInfo, ...]
    body_offset: int          # where the stream header starts
    trailing_bytes: int       # an incomplete chunk at the end (a cut file)
    problem: str | None       # structural damage found while walking

    @property
    def complete(self) -> bool:
        """Closed properly: the last chunk is final and nothing follows it."""
        return (bool(self.chunks) and self.chunks[-1].final and self.trailing_bytes == 0
                and self.problem is None)

    @property
    def samples(self) -> int:
        return self.chunks[-1].samples_end if self.chunks else 0


def read_layout(data: bytes) -> SealedLayout:
    """Walk a sealed file's clear framing; SealedFileError if its header is unusable."""
    if len(data) < len(MAGIC) + 3 or not data.startswith(MAGIC):
        raise SealedFileError("not a sealed recording (bad magic)")
    version = data[len(MAGIC)]
    if version != FORMAT:
        raise SealedFileError(f"unsupported sealed-file format {version}")
    (hlen,) = struct.unpack_from("<H", data, len(MAGIC) + 1)
    hstart = len(MAGIC) + 3
    if len(data) < hstart + hlen + STREAM_HEADER_BYTES:
        raise SealedFileError("truncated header")
    try:
        meta = json.loads(data[hstart:hstart + hlen])
        call_id, key_id = str(meta["call_id"]), str(meta["key_id"])
    except (ValueError, KeyError, TypeError):
        raise SealedFileError("damaged header") from None
    pos = hstart + hlen + STREAM_HEADER_BYTES
    chunks: list[ChunkInfo] = []
    problem = None
    while pos < len(data):
        if len(data) - pos < FRAME.size:
            break
        clen, samples_end, flags = FRAME.unpack_from(data, pos)
        if clen > MAX_CHUNK or flags & ~FLAG_FINAL or (chunks and chunks[-1].final):
            problem = f"damaged chunk frame at byte {pos}"
            break
        if len(data) - pos - FRAME.size < clen:
            break
        chunks.append(ChunkInfo(pos, clen, samples_end, bool(flags & FLAG_FINAL)))
        pos += FRAME.size + clen
    trailing = 0 if problem else len(data) - pos
    return SealedLayout(call_id, key_id, tuple(chunks), hstart + hlen, trailing, problem)


@dataclass(frozen=True)
class Opened:
    payload: bytes            # the Ogg bytes of every authentic chunk
    complete: bool            # closed properly; False for a cut recording
    samples: int


def open_sealed(data: bytes, data_key: bytes) -> Opened:
    """Decrypt every complete chunk; SealedFileError on any alteration."""
    layout = read_layout(data)
    if layout.problem:
        raise SealedFileError(f"altered or damaged recording: {layout.problem}")
    head_digest = hashlib.sha256(data[:layout.body_offset]).digest()
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    stream_header = data[layout.body_offset:layout.body_offset + STREAM_HEADER_BYTES]
    try:
        sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, stream_header, data_key)
    except (CryptoError, ValueError, TypeError):
        raise SealedFileError("cannot open the stream with this key") from None
    out = []
    final = False
    for info in layout.chunks:
        frame = data[info.offset:info.offset + FRAME.size]
        ct = data[info.offset + FRAME.size:info.offset + FRAME.size + info.clen]
        try:
            msg, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                state, ct, head_digest + frame)
        except (CryptoError, ValueError):
            raise SealedFileError(
                f"altered recording: chunk at byte {info.offset} fails authentication") from None
        if (tag == _TAG_FINAL) != info.final:
            raise SealedFileError(f"altered recording: final flag at byte {info.offset}")
        out.append(msg)
        final = tag == _TAG_FINAL
    return Opened(b"".join(out), final and layout.trailing_bytes == 0, layout.samples)
