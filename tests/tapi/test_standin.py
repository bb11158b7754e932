"""The hardware stand-ins run in processes of their own, and none outlives its test.

alsa-lib opens an ALSA ``file`` PCM's FIFO holding the GIL; an emulator
thread in the host's process that had to open the other end then never ran
(the suite hung 15 minutes under load). These tests make the host block in
that very open — right after a replug, before the stand-in has reopened the
FIFO — and check that the stand-in still gets there; and they check that a
stopped or orphaned stand-in leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _hwbench import SCENARIOS, bench  # noqa: E402

from appliance.units import FRAME_SAMPLES  # noqa: E402


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): count it as gone once it has exited
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return not _alive(pid)


def test_host_blocked_in_its_pcm_open_does_not_stop_the_emulator(tmp_path, monkeypatch):
    import alsaaudio
    with bench(tmp_path, monkeypatch, SCENARIOS / "demo.toml") as (emu, _url):
        assert emu.pid != os.getpid()
        for _ in range(5):
            emu.unplug()
            deadline = time.monotonic() + 5.0
            while Path(emu.link).is_symlink():
                assert time.monotonic() < deadline, "the emulator did not unplug"
                time.sleep(0.01)
            emu.replug()
            # at once: the FIFO may have no writer yet, so alsa-lib's open blocks here with
            # the GIL held; only another process can open the writing end now
            t0 = time.monotonic()
            pcm = alsaaudio.PCM(alsaaudio.PCM_CAPTURE, device="appliance_capture", channels=2,
                                rate=8000, format=alsaaudio.PCM_FORMAT_S16_LE,
                                periodsize=FRAME_SAMPLES, periods=2)
            pcm.close()
            assert time.monotonic() - t0 < 10.0
            assert emu.wait_plugged(5.0)
        assert emu.stats().connections == 6


def test_a_stopped_stand_in_leaves_no_process(tmp_path, monkeypatch):
    with bench(tmp_path, monkeypatch, SCENARIOS / "demo.toml") as (emu, _url):
        pid = emu.pid
        assert _alive(pid)
    assert _gone_within(pid, 5.0)


def test_a_killed_host_leaves_no_stand_in(tmp_path):
    """The host dies by SIGKILL (no teardown runs): the stand-in sees its channel close and
    exits by itself."""
    d = tmp_path / "bench"
    d.mkdir()
    code = (
        "import sys, time\n"
        "from datetime import datetime, timezone\n"
        "from pathlib import Path\n"
        "from appliance.tapi.emulator import EmulatorProcess\n"
        f"emu = EmulatorProcess(Path({str(SCENARIOS / 'demo.toml')!r}),"
        " datetime(2026, 1, 5, tzinfo=timezone.utc), Path(sys.argv[1]))\n"
        "print(emu.pid, flush=True)\n"
        "time.sleep(60)\n")
    host = subprocess.Popen([sys.executable, "-c", code, str(d)], stdout=subprocess.PIPE,
                            text=True)
    try:
        child = int(host.stdout.readline())
        assert _alive(child)
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait(10)
    assert _gone_within(child, 10.0), "the stand-in outlived its host"
