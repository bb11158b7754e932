"""LAPD: FCS-16, bit stuffing, address and control fields (telephony.md §4.2 vectors)."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from appliance.tapi import lapd

# telephony.md §4.6: synthesised INS64 SETUP, and the two LAPD frames built around it
Q931_SETUP = bytes.fromhex(
    "08 01 01 05 04 03 80 90 A2 18 01 89 1E 02 81 83 6C 0B 21 83 32 36 33 33 34 35 30 30 30"
    " 70 0A A1 32 36 33 33 34 35 30 30 31")
UI_FRAME = bytes.fromhex("02 FF 03") + Q931_SETUP + bytes.fromhex("7D 65")
I_FRAME = bytes.fromhex("02 81 00 00") + Q931_SETUP + bytes.fromhex("0F CC")
# telephony.md §4.5 (a): a real E-DSS1 SETUP as captured (I-frame, no FCS in the trace)
GOELLER_SETUP = bytes.fromhex(
    "00 fd 00 00 08 01 0c 05 04 03 80 90 a3 18 01 83 6c 07 01 80 32 39 38 32 31"
    " 6d 03 80 50 30 70 0c 81 30 33 30 35 36 33 33 33 33 38 38 7c 03 80 90 a3 7d 02 91 81")


def test_fcs_check_value_and_residue():
    assert lapd.fcs(b"123456789") == 0x906E
    assert lapd.fcs16(UI_FRAME) == 0xF0B8
    assert lapd.fcs16(I_FRAME) == 0xF0B8


def test_fcs_of_the_reference_frames():
    assert lapd.append_fcs(UI_FRAME[:-2]) == UI_FRAME
    assert lapd.append_fcs(I_FRAME[:-2]) == I_FRAME
    assert not lapd.fcs_ok(UI_FRAME[:-1] + bytes([UI_FRAME[-1] ^ 1]))


def test_bit_stuffing_vector():
    # telephony.md §4.2: 7E FF → 011111010111110111 after stuffing
    assert "".join(map(str, lapd.stuff(bytes([0x7E, 0xFF])))) == "011111010111110111"


def test_broadcast_ui_setup():
    f = lapd.parse(UI_FRAME, has_fcs=True)
    assert (f.sapi, f.cr, f.tei, f.name, f.error) == (0, 1, 127, "UI", None)
    assert f.info == Q931_SETUP and f.carries_q931


def test_i_frame_to_tei_64():
    f = lapd.parse(I_FRAME, has_fcs=True)
    # address 02 81: SAPI 0, C/R 1 (a network command), TEI 64
    assert (f.sapi, f.cr, f.tei, f.kind, f.ns, f.nr, f.pf) == (0, 1, 64, "I", 0, 0, 0)
    assert f.info == Q931_SETUP


def test_real_captures_address_and_control():
    f = lapd.parse(GOELLER_SETUP)
    assert (f.sapi, f.cr, f.tei, f.kind, f.ns, f.nr) == (0, 0, 126, "I", 0, 0)
    # §4.5 (b): the network's SETUP ACKNOWLEDGE, SAPI 0, C/R 1, TEI 70, N(S)=0 N(R)=1
    f = lapd.parse(bytes.fromhex("02 8d 00 02 08 01 81 0d 18 01 89"))
    assert (f.sapi, f.cr, f.tei, f.ns, f.nr) == (0, 1, 70, 0, 1)
    # §4.5 (c): SABME, UA
    assert lapd.parse(bytes.fromhex("00 01 7F")).name == "SABME"
    assert lapd.parse(bytes.fromhex("00 01 7F")).pf == 1
    assert lapd.parse(bytes.fromhex("02 01 73")).name == "UA"


def test_bad_fcs_is_reported_not_raised():
    f = lapd.parse(UI_FRAME[:-1] + b"\x00", has_fcs=True)
    assert f.error == "bad FCS" and not f.carries_q931


def test_hdlc_round_trip_through_the_bit_stream_in_any_chunks():
    bits = lapd.hdlc_encode([UI_FRAME, I_FRAME, lapd.build(63, 0, 127, lapd.UI, b"\x0f\x12\x34")],
                            idle_flags=3)
    for chunk in (1, 7, 64, len(bits)):
        rx = lapd.HdlcReceiver()
        frames = []
        for i in range(0, len(bits), chunk):
            frames += rx.feed(bits[i:i + chunk])
        assert frames[:2] == [UI_FRAME[:-2], I_FRAME[:-2]]
        assert lapd.parse(frames[2]).sapi == 63
        assert rx.stats.frames == 3 and rx.stats.bad_fcs == 0


def test_hdlc_abort_and_corruption_are_counted():
    bits = lapd.hdlc_encode([UI_FRAME])
    cut = bits[:60] + [1] * 8 + lapd.hdlc_encode([I_FRAME])
    rx = lapd.HdlcReceiver()
    assert rx.feed(cut) == [I_FRAME[:-2]]
    assert rx.stats.aborts == 1
    flipped = list(bits)
    flipped[100] ^= 1
    rx = lapd.HdlcReceiver()
    assert rx.feed(flipped) == []
    assert rx.stats.frames == 0


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_frames_never_raise(data):
    f = lapd.parse(data, has_fcs=True)
    g = lapd.parse(data)
    assert f.error is not None or lapd.fcs_ok(data)
    assert isinstance(g.as_dict(), dict)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 1), max_size=3000))
def test_garbage_bits_never_raise(bits):
    rx = lapd.HdlcReceiver()
    for f in rx.feed(bits):
        assert lapd.fcs_ok(f + lapd.append_fcs(f)[-2:])
