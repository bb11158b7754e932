"""The technician's console through a pty: every command, and nothing of a call's content.

A recorder runs a live scenario in real time (a call in progress on T1, T2
idle for the line tests); the catalog is seeded beforehand with calls whose
numbers are known. The test walks every console command as a technician at
a serial terminal would, then searches the whole transcript for those
numbers, for caller-ID text and for any byte of the recordings.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

from appliance.console.commands import COMMANDS
from appliance.store.datadir import DataDir

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "scenarios" / "appliance.toml"
PROMPT = "保守> ".encode()
SEEDED = ["0263345000", "0312345678", "09087654321", "0471239876"]
LIVE_NUMBER = "09011112222"

SEED = """
[scenario]
tail = 2.0
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
talk = 3.0
hangup = "near"
[[call]]
trunk = "T2"
at = 1.0
direction = "out"
far_number = "0312345678"
rings = 1
talk = 3.0
hangup = "far"
[[call]]
trunk = "T1"
at = 25.0
direction = "in"
far_number = "09087654321"
rings = 1
talk = 3.0
hangup = "near"
[[call]]
trunk = "T2"
at = 28.0
direction = "out"
far_number = "0471239876"
rings = 1
talk = 3.0
hangup = "near"
"""

LIVE = f"""
[scenario]
tail = 150.0
[[trunk]]
id = "T1"
[[trunk]]
id = "T2"
[[call]]
trunk = "T1"
at = 0.5
direction = "in"
far_number = "{LIVE_NUMBER}"
rings = 1
talk = 140.0
hangup = "near"
"""

FAKE_TOOL = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
case "$(basename "$0") $1" in
  "timedatectl show") printf 'Timezone=Asia/Tokyo\\nLocalRTC=no\\nNTP=yes\\nNTPSynchronized=no\\nRTCTimeUSec=Mon 2026-01-05 01:00:00 UTC\\n' ;;
  "journalctl "*) echo "2026-01-05T10:00:00+0900 rec appliance[1]: caller 0263345000 stray debug line"
                  echo "2026-01-05T10:00:01+0900 rec appliance[1]: dialled 031-234-5678" ;;
  "ip -brief") echo "eth0  UP  192.0.2.10/24" ;;
  "ip route") echo "default via 192.0.2.1 dev eth0" ;;
esac
exit 0
"""


@pytest.fixture
def fake_bin(tmp_path):
    d = tmp_path / "fakebin"
    d.mkdir()
    log = tmp_path / "tools.log"
    for name in ("systemctl", "timedatectl", "journalctl", "ip"):
        p = d / name
        p.write_text(FAKE_TOOL.format(log=log))
        p.chmod(0o755)
    return d, log


@pytest.fixture
def recorder(datadir, tmp_path, run_cli):
    seed = tmp_path / "seed.toml"
    seed.write_text(SEED)
    code, out, err = run_cli("--data-dir", datadir, "--config", CONFIG, "run", "--fast",
                             "--interface", f"sim://{seed}")
    assert code == 0, err
    live = tmp_path / "live.toml"
    live.write_text(LIVE)
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "--data-dir", str(datadir),
                             "--config", str(CONFIG), "run", "--interface", f"sim://{live}"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sock = Path(datadir) / "live.sock"
    deadline = time.monotonic() + 30
    while not sock.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sock.exists(), "the recorder did not publish its live status"
    time.sleep(4)                     # the live call is answered and its caller ID decoded
    yield proc
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)


def seeded_numbers(run_cli, datadir, staff) -> set[str]:
    code, out, err = run_cli("--data-dir", datadir, "calls", "--json", *staff)
    assert code == 0, err
    return {n for r in json.loads(out) for n in (r["far_number"], r["near_number"],
                                                  r["called_number"]) if n}


def test_every_console_command_through_a_pty_reveals_no_number_and_no_audio(
        datadir, recorder, fake_bin, run_cli, staff):
    bindir, tools_log = fake_bin
    # the catalog really holds the numbers we look for (else the search proves nothing)
    assert set(SEEDED) <= seeded_numbers(run_cli, datadir, staff)
    env = dict(os.environ, TERM="vt100", LANG="C.UTF-8", LOGNAME="hoshu1")
    transcript = io.BytesIO()
    child = pexpect.spawn(sys.executable, ["-m", "appliance", "--data-dir", str(datadir),
                                           "--config", str(CONFIG), "console",
                                           "--bin-dir", str(bindir)],
                          env=env, timeout=40, dimensions=(24, 80))
    child.logfile_read = transcript

    def run(line: str, *expect: str, answer: str | None = None) -> str:
        start = transcript.tell()
        child.sendline(line)
        if answer is not None:
            child.expect("type yes to go on".encode())
            child.sendline(answer)
        child.expect(PROMPT)
        out = transcript.getvalue()[start:].decode("utf-8")
        for e in expect:
            assert e in out, f"{line!r}: {e!r} not in\n{out}"
        return out

    try:
        child.expect(PROMPT)
        assert "保守担当者として操作します" in transcript.getvalue().decode()
        walked = []
        out = run("status", "T1/1", "通話中 / in call", "着信 / in", "T2/1", "待機中 / idle",
                  "録音処理: 稼働中")
        assert re.search(r"T1/1\s+通話中 / in call\s+着信 / in\s+00:00:\d\d", out)
        walked.append("status")
        run("alarms", "警報"); walked.append("alarms")
        run("alarms ack no_such_code 点検", "unknown alarm code")
        run("alarm paths", "未設定 / none configured")
        run("alarm test", "no delivery path is configured"); walked.append("alarm")
        # on an initialised appliance ``init`` refuses at once and asks for nothing
        run("init", "already initialised"); walked.append("init")
        out = run("levels 3", "3/3", "遠端 far", "近端 near")
        assert out.count("T1/1") == 3 and out.count("T2/1") == 3
        walked.append("levels")
        run("selftest T2/1", "ループ電流", "呼出検出", "音声経路 / audio path: 合格 / PASS")
        run("selftest T1/1", "実行せず")           # a line in a call is never disturbed
        walked.append("selftest")
        run("notice T2/1", "音声案内 / notice: 合格 / PASS", "回線上で確認 / heard")
        walked.append("notice")
        run("interface", "SimInterface", "periods"); walked.append("interface")
        run("storage", "空き free", "最古の記録 / oldest record", "保管期間 / retention",
            "完了 complete"); walked.append("storage")
        run("time", "NTP 同期 / NTP: 未同期 / NOT synchronised", "Asia/Tokyo", "RTC:")
        run("time set 2026-01-05T10:00:00 RTC電池交換のため", "設定しました", answer="yes")
        run("time set 2026-01-05T10:00:00", "理由は必須")
        walked.append("time")
        run("network", "192.0.2.10/24", "default via"); walked.append("network")
        run("log", "保守記録", "日別件数")
        out = run("log journal 5", "######", "stray debug line")
        walked.append("log")
        run("restart recorder", "再起動しました", answer="yes")
        run("restart web", "取り消しました", answer="no")
        walked.append("restart")
        run("shutdown", "停止処理中", answer="yes"); walked.append("shutdown")
        run("help", *(c.usage for c in COMMANDS.values()))
        for name in COMMANDS:
            run(f"help {name}", COMMANDS[name].help[:20])
        run("calls --json", "不明なコマンド")      # no staff command exists here
        # tab completion through readline: a command, then a line name
        child.send("stat\t")
        child.sendline("")
        child.expect(PROMPT)
        child.send("notice T2\t")
        child.sendline("")
        child.expect("音声案内 / notice: 合格".encode())
        child.expect(PROMPT)
        assert sorted(walked) == sorted(COMMANDS), "a console command was not walked"
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    raw = transcript.getvalue()

    # --- nothing of a call's content -------------------------------------------------
    text = raw.decode("utf-8")                       # plain UTF-8 text only
    assert "\x1b" not in text, "colour or cursor addressing sent to a plain terminal"
    assert not re.search(r"[\x00-\x06\x0b\x0c\x0e-\x1f\x7f]", text), "control bytes in output"
    squashed = re.sub(r"(?<=\d)[\-\s()]+(?=\d)", "", text)
    for number in [*SEEDED, LIVE_NUMBER]:
        assert number not in text and number not in squashed, f"number {number} reached the console"
    assert b"OggS" not in raw and b"OpusHead" not in raw
    dd = DataDir(datadir)
    windows = {raw[i:i + 16] for i in range(0, max(0, len(raw) - 15))}
    files = list(dd.recordings.rglob("*.acr"))
    assert files
    for f in files:
        data = f.read_bytes()
        assert not any(data[i:i + 16] in windows for i in range(0, len(data) - 15)), \
            f"bytes of {f.name} reached the console"

    # --- every action on the ledger as 保守; the tools, never the real ones -----------
    with dd.open_catalog(__import__("datetime").datetime.now().astimezone()) as cat:
        kinds = {r[0] for r in cat.conn.execute("SELECT DISTINCT kind FROM ledger")}
        done = [json.loads(r[0]) for r in cat.conn.execute(
            "SELECT detail FROM ledger WHERE kind = 'maintenance' AND actor LIKE 'hoshu1%'")]
    commands = {d["console"] for d in done}
    # 'alarm' is ledgered by its sub-command ('alarm test', 'alarm paths')
    assert {"login", "logout", *(set(COMMANDS) - {"alarm"}), "time set", "log journal",
            "alarms ack", "alarm test", "alarm paths"} <= commands
    assert all(d["role"] == "technician" for d in done)
    assert not kinds & {"listen", "extract", "provide"}
    tools = tools_log.read_text().splitlines()
    assert "systemctl restart appliance-recorder.service" in tools
    assert "systemctl poweroff" in tools
    assert "timedatectl set-time 2026-01-05 01:00:00 UTC" in tools
    assert not any("appliance-web" in t for t in tools)       # cancelled: not run


def test_console_takes_no_staff_credentials(datadir, run_cli, capsys):
    with pytest.raises(SystemExit) as exc:
        run_cli("--data-dir", datadir, "console", "--user", "kacho", "--password-file", "x")
    assert exc.value.code == 2
