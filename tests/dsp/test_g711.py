"""G.711 μ-law and A-law, bit-exact against two independent implementations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from appliance.dsp import g711
from _spandsp_dtmf import spandsp_g711_tables

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # stdlib in 3.11 (deprecated, gone in 3.13): an independent reference

ALL = np.arange(-32768, 32768).astype(np.int16)
CODES = np.arange(256, dtype=np.uint8)


@pytest.fixture(scope="module")
def spandsp():
    return spandsp_g711_tables()


def test_encoders_equal_spandsp_for_every_16_bit_input(spandsp):
    assert np.array_equal(g711.linear_to_ulaw(ALL), spandsp["ulaw_enc"])
    assert np.array_equal(g711.linear_to_alaw(ALL), spandsp["alaw_enc"])


def test_decoders_equal_spandsp_and_audioop_for_every_code(spandsp):
    assert np.array_equal(g711.ulaw_to_linear(CODES), spandsp["ulaw_dec"])
    assert np.array_equal(g711.alaw_to_linear(CODES), spandsp["alaw_dec"])
    assert np.array_equal(g711.ulaw_to_linear(CODES),
                          np.frombuffer(audioop.ulaw2lin(CODES.tobytes(), 2), "<i2"))
    assert np.array_equal(g711.alaw_to_linear(CODES),
                          np.frombuffer(audioop.alaw2lin(CODES.tobytes(), 2), "<i2"))


def test_alaw_encoder_equals_audioop_everywhere():
    ref = np.frombuffer(audioop.lin2alaw(ALL.tobytes(), 2), np.uint8)
    assert np.array_equal(g711.linear_to_alaw(ALL), ref)


def test_ulaw_encoder_differs_from_audioop_only_where_audioop_truncates_negatives():
    """audioop truncates to 14 bits before taking the magnitude; G.711 decides on |x|.

    The documented difference (g711.py): only negative inputs, one code apart,
    and our choice there is the symmetric one, code(-x) == code(x) ^ 0x80.
    """
    ours = g711.linear_to_ulaw(ALL)
    ref = np.frombuffer(audioop.lin2ulaw(ALL.tobytes(), 2), np.uint8)
    diff = np.flatnonzero(ours != ref)
    assert diff.size == 381
    assert (ALL[diff] < 0).all()
    assert (np.abs(ours[diff].astype(int) - ref[diff]) == 1).all()
    mags = -ALL[diff].astype(np.int32)
    assert np.array_equal(ours[diff], g711.linear_to_ulaw(mags.astype(np.int16)) ^ 0x80)


def test_ulaw_is_sign_symmetric_and_itu_endpoints():
    pos = np.arange(1, 32768).astype(np.int16)
    assert np.array_equal(g711.linear_to_ulaw(-pos.astype(np.int32)), g711.linear_to_ulaw(pos) ^ 0x80)
    # G.711 table 2: code 0x80 / 0x00 are the extremes ±8031 (14-bit) = ±32124; 0xFF is 0
    assert g711.ulaw_to_linear(bytes([0x80, 0x00, 0xFF, 0x7F])).tolist() == [32124, -32124, 0, 0]
    # table 1: A-law 0xD5 / 0x55 are ±1 (13-bit, ±8 here); 0xAA / 0x2A the extremes ±4032
    assert g711.alaw_to_linear(bytes([0xD5, 0x55, 0xAA, 0x2A])).tolist() == [8, -8, 32256, -32256]


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_then_encode_is_identity_on_codes(law):
    enc = getattr(g711, f"linear_to_{law}")
    dec = getattr(g711, f"{law}_to_linear")
    back = enc(dec(CODES))
    if law == "ulaw":
        # 0x7F (-0) decodes to 0, which encodes as +0 (0xFF): the only alias
        assert np.array_equal(back[CODES != 0x7F], CODES[CODES != 0x7F])
        assert back[0x7F] == 0xFF
    else:
        assert np.array_equal(back, CODES)


def test_garbage_input_is_clipped_not_wrapped():
    x = np.array([1e9, -1e9, np.nan, np.inf, -np.inf, 40000.0])
    assert g711.ulaw_to_linear(g711.linear_to_ulaw(x)).tolist() == [32124, -32124, 0, 32124,
                                                                    -32124, 32124]
    assert g711.linear_to_ulaw(np.zeros(0)).size == 0
