"""The technician's console attacked (issue 20, item 6): sessions that end without a
trace, and telephone numbers reaching the technician through the journal.

* A line hang-up (the terminal closes: SIGHUP), Ctrl-\\ (SIGQUIT) in the middle of
  a command and a stop (SIGTERM) each end the session *with* its logout entry.
* The journal: numbers in the 14 formats the attack used (and more: full-width,
  U+2010, katakana ー, zero-width spaces) are masked in ``log journal``; dates
  and call ids stay readable. A property test writes any Japanese number in
  any of those shapes and finds no 6-digit run left.
* At the source: a whole recording run, as the journal would get it (stdout
  and stderr of ``appliance run``), carries none of the scenario's numbers,
  and every log line is stamped in Japan time with its offset.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pexpect
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.logtext import normalise, redact
from appliance.store.datadir import DataDir

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "scenarios" / "appliance.toml"
PROMPT = "保守> ".encode()

#: the attack's formats (the seven it found unmasked first), then more an insider could try
NUMBER_FORMATS = [
    "0312345678", "03-1234-5678", "03 1234 5678", "(03)1234-5678", "+81 3 1234 5678",
    "090-1234-5678", "09012345678",
    "03.1234.5678", "03/1234/5678", "03_1234_5678", "03,1234,5678", "090.1234.5678",
    "03\u20101234\u20105678", "03\uff0d1234\uff0d5678",
    "\uff10\uff13\uff0d\uff11\uff12\uff13\uff14\uff0d\uff15\uff16\uff17\uff18",
    "03\u30fc1234\u30fc5678", "03\u200b1234\u200b5678", "03\u22121234\u22125678",
    "03\u20141234\u20145678", "03\u3001\u200b1234\u30015678",
]

FAKE_JOURNALCTL = """#!/bin/sh
cat "{lines}"
exit 0
"""


def digits(text: str) -> str:
    return re.sub(r"\D", "", normalise(text))


def test_every_format_is_masked_and_dates_and_call_ids_stay():
    for n in NUMBER_FORMATS:
        line = f"2026-12-08T10:02:53+09:00 rec appliance[812]: caller {n} stray"
        out = redact(line)
        assert "1234" not in digits(out.split("caller", 1)[1]), (n, out)
        assert out.startswith("2026-12-08T10:02:53+09:00"), out
    kept = ("2026-12-08 10:02:53.123+09:00 call 20261208T100253-T1c1-3f9a2b ended, "
            "2026/12/08 10:02, 2026年12月8日(火) 10:02, REQ-20261208-001, EXP-20261208-012, "
            "42 frames, port 8443")
    assert redact(kept) == kept


_SEPARATORS = ["", "-", " ", ".", "/", "_", ",", "\u2010", "\u2011", "\u2012", "\u2013",
               "\u2014", "\u2015", "\u2212", "\u30fc", "\uff0d", "\uff0e", "\uff0f", "\u3001",
               "\u200b", "\u00ad", "\ufeff", "  "]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(area=st.sampled_from(["03", "06", "0263", "090", "080", "0120", "050"]),
       middle=st.integers(0, 9999), last=st.integers(0, 9999),
       sep=st.sampled_from(_SEPARATORS), wide=st.booleans(),
       before=st.sampled_from(["", "caller ", "番号:", "dialled=", "x"]),
       after=st.sampled_from(["", " stray", "。", ")", " 10:02"]))
def test_any_japanese_number_in_any_shape_is_masked(area, middle, last, sep, wide, before,
                                                    after):
    number = f"{area}{sep}{middle:04d}{sep}{last:04d}"
    if wide:
        number = number.translate({c: c + 0xFEE0 for c in range(0x30, 0x3A)})
    out = redact(f"{before}{number}{after}")
    assert not re.search(r"\d{6}", digits(out)), (number, out)


def _spawn(datadir, bindir=None, logname="hoshu1") -> pexpect.spawn:
    env = dict(os.environ, TERM="vt100", LANG="C.UTF-8", LOGNAME=logname)
    args = ["-m", "appliance", "--data-dir", str(datadir), "--config", str(CONFIG), "console"]
    if bindir:
        args += ["--bin-dir", str(bindir)]
    return pexpect.spawn(sys.executable, args, env=env, timeout=40, dimensions=(24, 80))


def _session_entries(datadir, logname: str) -> list[dict]:
    with DataDir(datadir).open_catalog(datetime.now(timezone.utc)) as cat:
        rows = cat.conn.execute(
            "SELECT detail FROM ledger WHERE kind = 'maintenance' AND actor LIKE ? ORDER BY seq",
            (f"{logname} %",)).fetchall()
    return [json.loads(r[0]) for r in rows]


def _wait_exit(child: pexpect.spawn) -> int | None:
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    return child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)


def test_a_line_hang_up_ends_the_session_with_a_logout_entry(datadir):
    child = _spawn(datadir, logname="hup1")
    try:
        child.expect(PROMPT)
        child.sendline("storage")
        child.expect(PROMPT)
        # the serial line drops: the terminal's master side closes and the kernel sends
        # SIGHUP to the session (pexpect's own close would add signals of its own)
        child.ptyproc.fileobj.close()
        end = time.monotonic() + 30
        while child.ptyproc.isalive() and time.monotonic() < end:
            time.sleep(0.05)
        assert not child.ptyproc.isalive(), "the console survived its line's hang-up"
        assert child.ptyproc.exitstatus == 128 + signal.SIGHUP
    finally:
        if child.ptyproc.isalive():
            child.ptyproc.kill(signal.SIGKILL)
    done = _session_entries(datadir, "hup1")
    assert [d["console"] for d in done] == ["login", "storage", "logout"], done
    assert done[-1]["ended_by"] == "SIGHUP"


def test_ctrl_backslash_in_the_middle_of_a_command_still_logs_out(datadir):
    child = _spawn(datadir, logname="quit1")
    try:
        child.expect(PROMPT)
        child.sendline("restart web")
        child.expect("type yes to go on".encode())
        child.sendcontrol("\\")              # SIGQUIT from the terminal, at the question
        assert _wait_exit(child) == 128 + signal.SIGQUIT
    finally:
        if child.isalive():
            child.terminate(force=True)
    done = _session_entries(datadir, "quit1")
    assert done[0]["console"] == "login"
    assert done[-1]["console"] == "logout" and done[-1]["ended_by"] == "SIGQUIT", done


def test_a_stop_ends_the_session_with_a_logout_entry(datadir):
    child = _spawn(datadir, logname="term1")
    try:
        child.expect(PROMPT)
        child.kill(signal.SIGTERM)
        assert _wait_exit(child) == 128 + signal.SIGTERM
    finally:
        if child.isalive():
            child.terminate(force=True)
    done = _session_entries(datadir, "term1")
    assert [d["console"] for d in done] == ["login", "logout"]
    assert done[-1]["ended_by"] == "SIGTERM"


def test_exit_still_logs_out_as_before(datadir):
    child = _spawn(datadir, logname="exit1")
    try:
        child.expect(PROMPT)
        child.sendline("exit")
        assert _wait_exit(child) == 0
    finally:
        if child.isalive():
            child.terminate(force=True)
    last = _session_entries(datadir, "exit1")[-1]
    assert last["console"] == "logout" and last["ended_by"] == "exit", last


def test_log_journal_masks_every_format(datadir, tmp_path):
    lines = tmp_path / "journal.txt"
    lines.write_text("".join(f"2026-12-08T10:02:{i:02d}+0900 rec appliance[812]: "
                             f"call 20261208T100200-T1c1-3f9a2b caller {n} #{i}\n"
                             for i, n in enumerate(NUMBER_FORMATS)), encoding="utf-8")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "journalctl"
    tool.write_text(FAKE_JOURNALCTL.format(lines=lines))
    tool.chmod(0o755)
    child = _spawn(datadir, bindir)
    try:
        child.expect(PROMPT)
        child.sendline(f"log journal {len(NUMBER_FORMATS)}")
        child.expect(PROMPT)
        out = child.before.decode("utf-8")
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    shown = [ln for ln in out.splitlines() if "caller" in ln]
    assert len(shown) == len(NUMBER_FORMATS), out
    for ln, n in zip(shown, NUMBER_FORMATS):
        assert "######" in ln, (n, ln)
        assert "1234" not in digits(ln.split("caller", 1)[1]), (n, ln)
        assert "20261208T100200-T1c1-3f9a2b" in ln      # the call stays identifiable


SCENARIO = """
[scenario]
tail = 1.0
[[trunk]]
id = "T1"
[[trunk]]
id = "T2"
[[call]]
trunk = "T1"
at = 0.5
direction = "in"
far_number = "0263345000"
rings = 1
talk = 2.0
hangup = "near"
[[call]]
trunk = "T2"
at = 0.8
direction = "out"
far_number = "09087654321"
rings = 1
talk = 2.0
hangup = "far"
"""


def test_a_recording_run_writes_no_number_to_the_journal_and_one_clock(datadir, tmp_path):
    scenario = tmp_path / "calls.toml"
    scenario.write_text(SCENARIO)
    r = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(datadir),
                        "--config", str(CONFIG), "-v", "run", "--fast", "--interface",
                        f"sim://{scenario}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    journal = r.stdout + r.stderr
    assert "call" in r.stderr and "started" in r.stderr, "no log lines: the test proves nothing"
    for line in journal.splitlines():
        for number in ("0263345000", "09087654321"):
            assert number not in digits(line), f"{number} reached the journal: {line}"
    # one clock: every log line carries Japan time with its offset
    log_lines = [ln for ln in r.stderr.splitlines() if re.search(r" (INFO|WARNING|ERROR|DEBUG) ",
                                                                 ln)]
    assert log_lines
    for ln in log_lines:
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\+09:00 ", ln), ln
    # and the calls really were decoded (the numbers exist where staff may see them)
    with DataDir(datadir).open_catalog(datetime.now(timezone.utc)) as cat:
        stored = {r[0] for r in cat.conn.execute("SELECT far_number FROM calls")}
    assert {"0263345000", "09087654321"} <= stored
