"""Q.931: the real captured bytes and synthesised vectors of telephony.md §4.5–4.6, and garbage."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from appliance.tapi import lapd, q931

SETUP_NATIONAL = bytes.fromhex(
    "08 01 01 05 04 03 80 90 A2 18 01 89 1E 02 81 83 6C 0B 21 83 32 36 33 33 34 35 30 30 30"
    " 70 0A A1 32 36 33 33 34 35 30 30 31")
SETUP_UNKNOWN = bytes.fromhex(
    "08 01 01 05 04 03 80 90 A2 18 01 89 6C 0C 01 80 30 32 36 33 33 34 35 30 30 30"
    " 70 0B 81 30 32 36 33 33 34 35 30 30 31")
GOELLER = bytes.fromhex(
    "00 fd 00 00 08 01 0c 05 04 03 80 90 a3 18 01 83 6c 07 01 80 32 39 38 32 31"
    " 6d 03 80 50 30 70 0c 81 30 33 30 35 36 33 33 33 33 38 38 7c 03 80 90 a3 7d 02 91 81")
LINKBIT_PRI = bytes.fromhex(
    "00 01 02 02 08 02 00 32 05 04 03 80 90 A3 18 03 A9 83 85 1E 02 81 88"
    " 6C 09 21 80 32 32 32 32 32 30 35 70 08 A1 31 31 31 31 31 30 35 A1")


def test_synthesised_ins64_setup_national_numbers_gain_their_zero():
    m = q931.parse(SETUP_NATIONAL)
    assert (m.name, m.cr, m.cr_flag, m.error) == ("SETUP", 1, 0, None)
    assert m.law == "ulaw" and m.b_channel == 1
    cg = m.number("calling_number")
    assert (cg.type, cg.plan, cg.presentation, cg.screening) == ("national", "e164", "allowed",
                                                                   "network")
    assert cg.digits == "263345000" and cg.normalised == "0263345000"
    assert m.number("called_number").normalised == "0263345001"


def test_synthesised_setup_type_unknown_keeps_digits_as_dialled():
    m = q931.parse(SETUP_UNKNOWN)
    cg = m.number("calling_number")
    assert (cg.type, cg.screening, cg.normalised) == ("unknown", "user_not_screened", "0263345000")
    assert m.number("called_number").normalised == "0263345001"


def test_real_edss1_setup_alaw():
    f = lapd.parse(GOELLER)
    m = q931.parse(f.info)
    assert (m.name, m.cr, m.law) == ("SETUP", 0x0C, "alaw")
    assert m.ies["channel_id"]["any"] is True and m.b_channel is None
    cg = m.number("calling_number")
    assert (cg.type, cg.plan, cg.presentation, cg.digits) == ("unknown", "e164", "allowed", "29821")
    # the bytes carry 11 digits (telephony.md's prose shows one "3" too many)
    assert m.number("called_number").digits == "03056333388"
    assert "calling_subaddress" in m.ies and "high_layer_compat" in m.ies


def test_real_setup_acknowledge_reply_flag():
    f = lapd.parse(bytes.fromhex("02 8d 00 02 08 01 81 0d 18 01 89"))
    m = q931.parse(f.info)
    assert (m.name, m.cr, m.cr_flag, m.b_channel) == ("SETUP ACKNOWLEDGE", 1, 1, 1)


def test_real_pri_setup_two_octet_call_reference():
    m = q931.parse(lapd.parse(LINKBIT_PRI).info)
    assert (m.cr_len, m.cr, m.name) == (2, 0x32, "SETUP")
    assert m.ies["channel_id"]["interface"] == "primary" and m.b_channel == 5
    assert m.number("calling_number").normalised == "02222205"
    assert m.number("called_number").normalised == "01111105"
    assert m.ies.get("sending_complete") is True


def test_clearing_messages_and_cause():
    for mtype, name in ((0x45, "DISCONNECT"), (0x4D, "RELEASE"), (0x5A, "RELEASE COMPLETE")):
        m = q931.parse(bytes([0x08, 0x01, 0x81, mtype]) + bytes.fromhex("08 02 80 90"))
        assert (m.name, m.cause, m.ies["cause"]["location"]) == (name, 16, "user")


def test_connected_number_and_encoder_round_trip():
    raw = q931.message(q931.CONNECT, 5, flag=1, ies=q931.party_ie(0x4C, "312345678", ton=2,
                                                                   presentation=1, screening=1))
    m = q931.parse(raw)
    c = m.number("connected_number")
    assert (m.name, m.cr, m.cr_flag) == ("CONNECT", 5, 1)
    assert (c.presentation, c.screening, c.normalised) == ("restricted", "user_passed", "0312345678")


def test_truncated_message_reports_an_error():
    m = q931.parse(SETUP_NATIONAL[:-3])
    assert m.error and "truncated" in m.error
    assert m.law == "ulaw"           # what came before the damage is still decoded


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_never_raises(data):
    m = q931.parse(data)
    assert isinstance(m.as_dict(), dict)
    q931.parse(b"\x08\x01\x01" + data).as_dict()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=20)), max_size=12))
def test_random_information_elements_never_raise(ies):
    body = b"".join(bytes([i & 0x7F, len(c)]) + c for i, c in ies)
    m = q931.parse(bytes([0x08, 0x01, 0x01, 0x05]) + body)
    assert m.error is None
    m.as_dict()
