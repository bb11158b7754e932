"""``appliance isdn decode``: hex frames and pcap captures (link types 177 and 203), as JSON."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest

from appliance.tapi import lapd

SETUP = bytes.fromhex(
    "08 01 01 05 04 03 80 90 A2 18 01 89 1E 02 81 83 6C 0B 21 83 32 36 33 33 34 35 30 30 30"
    " 70 0A A1 32 36 33 33 34 35 30 30 31")


def run(*args):
    p = subprocess.run([sys.executable, "-m", "appliance", "isdn", "decode", *args],
                       capture_output=True, text=True, timeout=60)
    return p


def pcap(linktype: int, records: list[bytes]) -> bytes:
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)
    for i, r in enumerate(records):
        out += struct.pack("<IIII", 1700000000 + i, 0, len(r), len(r)) + r
    return out


def test_hex_frame_with_fcs():
    p = run("--hex", "02 FF 03 " + SETUP.hex(" ") + " 7D 65", "--json")
    assert p.returncode == 0, p.stderr
    (f,) = json.loads(p.stdout)["frames"]
    assert f["fcs"] == "ok"
    assert f["lapd"]["tei"] == 127 and f["lapd"]["frame"] == "UI"
    assert f["q931"]["message"] == "SETUP"
    assert f["q931"]["ies"]["calling_number"]["number"] == "0263345000"
    assert f["q931"]["ies"]["calling_number"]["type"] == "national"
    assert f["q931"]["ies"]["bearer_capability"]["law"] == "ulaw"


def test_linux_lapd_pcap(tmp_path):
    sll = lambda pkttype, nt: struct.pack(">HHH8sH", pkttype, 8445, 1, bytes([nt]) + bytes(7), 0x30)
    frames = [sll(0, 1) + lapd.build(0, 1, 127, lapd.UI, SETUP, with_fcs=False),
              sll(4, 1) + lapd.build(0, 0, 64, lapd.i_control(0, 1),
                                     bytes.fromhex("08 01 81 45 08 02 80 90"), with_fcs=False)]
    path = tmp_path / "d.pcap"
    path.write_bytes(pcap(177, frames))
    p = run("--pcap", str(path), "--json")
    assert p.returncode == 0, p.stderr
    a, b = json.loads(p.stdout)["frames"]
    assert (a["direction"], a["capture_side"], a["q931"]["message"]) == ("received", "network",
                                                                         "SETUP")
    assert b["direction"] == "sent" and b["q931"]["message"] == "DISCONNECT"
    assert b["q931"]["ies"]["cause"]["value"] == 16


def test_raw_lapd_pcap_with_a_cut_tail(tmp_path):
    data = pcap(203, [lapd.build(0, 1, 127, lapd.UI, SETUP, with_fcs=False)])
    path = tmp_path / "cut.pcap"
    path.write_bytes(data + struct.pack("<IIII", 0, 0, 500, 500) + b"\x00" * 10)
    p = run("--pcap", str(path), "--json")
    assert p.returncode == 0, p.stderr
    assert [f["q931"]["message"] for f in json.loads(p.stdout)["frames"]] == ["SETUP"]


@pytest.mark.parametrize("content", [b"", b"not a pcap at all, definitely", None])
def test_bad_inputs_fail_cleanly(tmp_path, content):
    path = tmp_path / "x.pcap"
    if content is not None:
        path.write_bytes(content)
    p = run("--pcap", str(path), "--json")
    assert p.returncode == 2 and "Traceback" not in p.stderr and "エラー" in p.stderr


def test_bad_hex_and_wrong_linktype(tmp_path):
    p = run("--hex", "0x1", "--json")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    path = tmp_path / "eth.pcap"
    path.write_bytes(pcap(1, [b"\x00" * 20]))
    p = run("--pcap", str(path), "--json")
    assert p.returncode == 2 and "177" in p.stderr
