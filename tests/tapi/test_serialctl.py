"""The control protocol: round trips, garbage, cut frames and bad CRCs over a real pty (pyserial)."""

from __future__ import annotations

import os
import tty

from hypothesis import given, settings, strategies as st

from appliance.tapi import serialctl as sc

MESSAGES = [sc.Identity(1, "fw-2.1", "SN0042", 4, 0xDEADBEEF), sc.Heartbeat(160, 0),
            sc.WireEvent(320, 1, 1, "ring_on"), sc.DFrame(480, 0, True, True, bytes(range(256))),
            sc.SetLoop(0, 1, True), sc.NoticePath(3, 1, False), sc.HostSync(2 ** 40),
            sc.Request(sc.Msg.GET_COUNTERS)]


def test_round_trip_in_any_chunking():
    wire = b"".join(sc.encode(m, i) for i, m in enumerate(MESSAGES))
    for step in (1, 3, 64, len(wire)):
        d = sc.Decoder()
        out = []
        for i in range(0, len(wire), step):
            out += d.feed(wire[i:i + step])
        assert out == MESSAGES and d.stats.errors() == 0


def test_bad_crc_cut_frame_and_noise_are_counted_and_skipped():
    good = [sc.encode(m) for m in MESSAGES[:3]]
    bad_crc = bytearray(sc.encode(sc.Heartbeat(999)))
    bad_crc[3] ^= 0x40
    cut = sc.encode(sc.WireEvent(5, 0, 1, "loop_open"))[:5]
    wire = good[0] + bytes(bad_crc) + cut + b"\x00" + b"\x13\x37garbage\x00" + good[1] + good[2]
    d = sc.Decoder()
    assert d.feed(wire) == MESSAGES[:3]
    assert d.stats.bad_crc + d.stats.bad_cobs + d.stats.malformed >= 3


def test_an_endless_frame_is_dropped_whole():
    d = sc.Decoder()
    assert d.feed(b"\x01" * 5000) == []
    assert d.feed(b"\x00" + sc.encode(sc.Heartbeat(1))) == [sc.Heartbeat(1)]
    assert d.stats.too_long == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_garbage_never_raises(data):
    d = sc.Decoder()
    d.feed(data)
    assert d.feed(b"\x00" + sc.encode(sc.Heartbeat(7))) == [sc.Heartbeat(7)]


def test_over_a_pty_with_pyserial():
    master, slave = os.openpty()
    tty.setraw(slave)
    link = sc.SerialLink(os.ttyname(slave))
    try:
        link.send(sc.SetLoop(1, 1, True))
        got = sc.Decoder().feed(os.read(master, 1024))
        assert got == [sc.SetLoop(1, 1, True)]
        os.write(master, b"\xff\xfe noise \x00" + sc.encode(sc.Heartbeat(320)))
        msgs = link.poll(wait=1.0)
        assert msgs == [sc.Heartbeat(320)] and link.stats.errors() == 1
        os.close(master)
        master = None
        try:
            link.poll(wait=0.1)
            link.send(sc.HostSync(0))
            raise AssertionError("a vanished device must be reported")
        except sc.LinkLost:
            pass
    finally:
        link.close()
        if master is not None:
            os.close(master)
        os.close(slave)
