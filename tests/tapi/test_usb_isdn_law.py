"""The USB path learns each B-channel's G.711 law from the call's bearer capability,
also when the channel is named only after the SETUP (an outgoing call)."""

from __future__ import annotations

from types import SimpleNamespace

from appliance.tapi import lapd, q931
from appliance.tapi.usbiface import MAX_CALL_LAWS, UsbInterface


def _frame(sender_is_net: bool, info: bytes) -> bytes:
    # as the device hands D-channel frames over: without their FCS
    return lapd.build(0, 1 if sender_is_net else 0, 0, lapd.i_control(0, 0), info,
                      with_fcs=False)


def _host():
    return SimpleNamespace(_law={}, _call_law={})


def watch(host, trunk: str, sender_is_net: bool, info: bytes) -> None:
    UsbInterface._watch_bearer(host, trunk, _frame(sender_is_net, info))


def test_outgoing_alaw_call_gets_its_channel_from_call_proceeding():
    host = _host()
    # the user's SETUP: A-law bearer, no channel named
    watch(host, "P1", False, q931.message(q931.SETUP, 5, 0, q931.bearer_ie("alaw")
                                          + q931.party_ie(0x70, "312345678", 2, 1)))
    assert host._law == {}
    # the network assigns B-channel 7 in CALL PROCEEDING
    watch(host, "P1", True, q931.message(q931.CALL_PROCEEDING, 5, 1, q931.pri_channel_ie(7)))
    assert host._law == {("P1", 7): "alaw"}
    watch(host, "P1", True, q931.message(q931.RELEASE_COMPLETE, 5, 1, q931.cause_ie(16)))
    assert host._call_law == {}                     # forgotten when the call is cleared
    assert host._law == {("P1", 7): "alaw"}


def test_incoming_setup_names_law_and_channel_together():
    host = _host()
    watch(host, "B1", True, q931.message(q931.SETUP, 9, 0, q931.bearer_ie("ulaw")
                                         + q931.bri_channel_ie(2)))
    assert host._law == {("B1", 2): "ulaw"}
    # the same call reference on another trunk is another call
    watch(host, "B2", True, q931.message(q931.CALL_PROCEEDING, 9, 1, q931.bri_channel_ie(1)))
    assert ("B2", 1) not in host._law


def test_the_remembered_laws_are_bounded():
    host = _host()
    for cr in range(MAX_CALL_LAWS + 50):              # clearings never seen
        watch(host, "P1", False, q931.message(q931.SETUP, cr % 32000 + 1, 0,
                                              q931.bearer_ie("alaw"), cr_len=2))
    assert len(host._call_law) <= MAX_CALL_LAWS
