"""G.711 μ-law and A-law, both ways, on 16-bit linear samples.

Digest (ITU-T G.711, 1988; reference software ITU-T G.191 ``g711.c``):
* μ-law: 14-bit magnitude, bias 33, 8 segments × 16 steps; codes are sent
  bit-inverted.  Decoded values span ±8031 (14-bit), i.e. ±32124 here.
  Japan and North America use μ-law (NTT INS-Net bearer 0xA2).
* A-law: 13-bit magnitude, segment 0 and 1 share a step, even bits inverted
  (XOR 0x55).  Decoded values span ±4032 (13-bit), i.e. ±32256 here.
* μ-law quantises the magnitude |x| (decision values symmetric about 0);
  A-law quantises negatives from their ones' complement ``~x`` (its
  decision values sit half a step off zero).  Our tables equal spandsp's for
  all 65536 inputs of both laws.  Python's ``audioop`` agrees for A-law and
  for every decoded value; for 381 negative μ-law inputs just below a
  decision magnitude it truncates the two's-complement value to 14 bits
  first and lands on the adjacent code (tests/dsp/test_g711.py pins this).
* Tables are computed here from the law's definition (not copied), once, at
  import; encoding is a 64 Ki-entry lookup, decoding a 256-entry lookup.
"""

from __future__ import annotations

import numpy as np

_ALL = np.arange(-32768, 32768, dtype=np.int64)


def _top_bit(v: np.ndarray) -> np.ndarray:
    """Index of the highest set bit of positive integers."""
    return np.floor(np.log2(v)).astype(np.int64)


def _build_ulaw_encode() -> np.ndarray:
    neg = _ALL < 0
    # sign-magnitude: the decision values of G.711 table 2a apply to |x|
    mag = np.where(neg, -_ALL, _ALL) + 0x84          # bias 33 in 14-bit units
    mask = np.where(neg, 0x7F, 0xFF)
    seg = _top_bit(mag | 0xFF) - 7
    code = (seg << 4) | ((mag >> np.minimum(seg + 3, 31)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)            # saturate
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> np.ndarray:
    neg = _ALL < 0
    # ones' complement for negatives: the A-law decision values sit half a
    # step off zero (G.711 table 1a), so -1 must quantise like +0
    mag = np.where(neg, ~_ALL, _ALL)
    mask = np.where(neg, 0x55, 0xD5)
    seg = _top_bit(mag | 0xFF) - 7
    shift = np.where(seg == 0, 4, seg + 3)
    code = (seg << 4) | ((mag >> np.minimum(shift, 31)) & 0xF)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> np.ndarray:
    c = ~np.arange(256, dtype=np.int64) & 0xFF
    seg = (c >> 4) & 7
    mag = (((c & 0xF) << 3) + 0x84 << seg) - 0x84
    return np.where(c & 0x80, -mag, mag).astype(np.int16)


def _build_alaw_decode() -> np.ndarray:
    c = np.arange(256, dtype=np.int64) ^ 0x55
    seg = (c >> 4) & 7
    mant = (c & 0xF) << 4
    mag = np.where(seg == 0, mant + 8, (mant + 0x108) << np.maximum(seg - 1, 0))
    return np.where(c & 0x80, mag, -mag).astype(np.int16)


_ULAW_ENC = _build_ulaw_encode()
_ALAW_ENC = _build_alaw_encode()
_ULAW_DEC = _build_ulaw_decode()
_ALAW_DEC = _build_alaw_decode()
for _t in (_ULAW_ENC, _ALAW_ENC, _ULAW_DEC, _ALAW_DEC):
    _t.setflags(write=False)


def _index(samples) -> np.ndarray:
    x = np.asarray(samples)
    if x.dtype != np.int16:
        x = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)
    return x.astype(np.int32) + 32768


def _codes(data) -> np.ndarray:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def linear_to_ulaw(samples) -> np.ndarray:
    """16-bit linear samples (values clipped to int16) to μ-law codes (uint8)."""
    return _ULAW_ENC[_index(samples)]


def linear_to_alaw(samples) -> np.ndarray:
    """16-bit linear samples (values clipped to int16) to A-law codes (uint8)."""
    return _ALAW_ENC[_index(samples)]


def ulaw_to_linear(codes) -> np.ndarray:
    """μ-law codes (bytes or uint8 array) to 16-bit linear samples."""
    return _ULAW_DEC[_codes(codes)]


def alaw_to_linear(codes) -> np.ndarray:
    """A-law codes (bytes or uint8 array) to 16-bit linear samples."""
    return _ALAW_DEC[_codes(codes)]


def ulaw_roundtrip(samples) -> np.ndarray:
    """Linear → μ-law → linear: what an INS-Net B-channel does to the audio."""
    return _ULAW_DEC[_ULAW_ENC[_index(samples)]]


def alaw_roundtrip(samples) -> np.ndarray:
    return _ALAW_DEC[_ALAW_ENC[_index(samples)]]
