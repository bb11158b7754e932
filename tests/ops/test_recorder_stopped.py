"""Stop the recorder while the web service runs (issue 16, must hold).

Real processes: ``appliance run`` (a call with caller ID on the simulator, in
real time), ``appliance web`` on loopback, rsyslog with TLS, an SMTP server
and snmptrapd. The recorder is killed (as a crash would); within 60 s the
web service raises ``recorder_not_answering``, the status page shows it
first, and every path delivers it — and no delivered byte carries the
call's number.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _receivers import Rsyslog, SmtpServer, TrapReceiver, free_port, make_ca, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
NUMBER = "0263345000"       # the built-in demo call's caller ID (appliance/cli/run.py)


def _appliance(*args, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "appliance", *map(str, args)],
                                stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def _stop(p: subprocess.Popen | None) -> None:
    if p is None or p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(10)


def _alarms(datadir) -> list[dict]:
    r = subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(datadir), "alarms",
                        "--json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_stopped_recorder_is_an_alarm_shown_first_and_delivered_everywhere(
        datadir, tmp_path, password_file):
    certs = make_ca(tmp_path / "ca")
    receivers = []
    procs: list[subprocess.Popen] = []
    try:
        rs = Rsyslog(tmp_path / "rsyslog", certs).start()
        receivers.append(rs)
        smtp = SmtpServer(tmp_path / "smtp").start()
        receivers.append(smtp)
        traps = TrapReceiver(tmp_path / "snmptrapd").start()
        receivers.append(traps)
        config = tmp_path / "appliance.toml"
        base = (ROOT / "scenarios" / "appliance.toml").read_text(encoding="utf-8")
        config.write_text(base + f'''
[alarms]
recorder_check_s = 1
recorder_silent_s = 3

[alarms.syslog]
host = "127.0.0.1"
port = {rs.port}
ca_file = "{certs['ca']}"
server_name = "localhost"

[alarms.mail]
host = "127.0.0.1"
port = {smtp.port}
from = "rokuon-east@city.example.jp"
to = ["jinji@city.example.jp"]
addressee = "松本市 総務部 人事課 御中"

[alarms.snmp]
host = "127.0.0.1"
port = {traps.port}
''', encoding="utf-8")
        web_port = free_port()
        # a real-time call with caller ID: the recorder decodes the number while it runs
        recorder = _appliance("--data-dir", datadir, "--config", config, "run",
                              "--demo-seconds", "600", log=tmp_path / "recorder.log")
        procs.append(recorder)
        web = _appliance("--data-dir", datadir, "--config", config, "web", "--listen",
                         f"127.0.0.1:{web_port}", "--http", log=tmp_path / "web.log")
        procs.append(web)
        client = httpx.Client(base_url=f"http://127.0.0.1:{web_port}", timeout=10)

        def ready():
            try:
                return client.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False
        wait_for(ready, 60, 0.2, "the recorder and the web service to be ready")
        wait_for(lambda: b"recording" in (tmp_path / "recorder.log").read_bytes(), 60, 0.2,
                 "the call to be recorded")

        os.kill(recorder.pid, signal.SIGKILL)            # the recorder dies
        recorder.wait(10)
        killed_at = time.monotonic()
        raised = wait_for(lambda: [a for a in _alarms(datadir)
                                   if a["code"] == "recorder_not_answering"], 60, 0.5,
                          "the alarm to be raised")
        assert time.monotonic() - killed_at < 60
        assert _alarms(datadir)[0]["code"] == "recorder_not_answering"     # first
        assert raised[0]["severity"] == "critical" and raised[0]["cleared_at"] is None
        assert client.get("/healthz").json()["recorder"] == "not_answering"

        # the status page shows it first, as an alarm (not a line of text beside "no alarm")
        token = client.get("/api/session/login-csrf").json()["csrf"]
        r = client.post("/api/session", json={"user": "kacho",
                                              "password": password_file.read_text().strip()},
                        headers={"X-CSRF-Token": token})
        assert r.status_code == 200, r.text
        page = client.get("/status").text
        alarms_html = page.split('<ul id="alarms">', 1)[1].split("</ul>", 1)[0]
        first = alarms_html.split("</li>", 1)[0]
        assert 'data-code="recorder_not_answering"' in first and "録音装置の応答なし" in first
        assert "警報はありません" not in page
        assert page.index('id="alarm-card"') < page.index('id="recorder"')

        # delivered by every configured path, within the same minute
        wait_for(lambda: any("recorder_not_answering" in m["sd"] for m in rs.messages()),
                 60 - (time.monotonic() - killed_at), 0.5, "syslog")
        wait_for(lambda: any("録音装置の応答なし" in m["Subject"] for m in smtp.mails()),
                 60 - (time.monotonic() - killed_at), 0.5, "mail")
        wait_for(lambda: any("recorder_not_answering" in str(n["vars"])
                             for n in traps.notifications()),
                 60 - (time.monotonic() - killed_at), 0.5, "SNMP")
        assert time.monotonic() - killed_at < 60

        # no number, caller ID or audio in any delivered byte
        for rx in receivers:
            raw = rx.raw()
            assert NUMBER.encode() not in raw and NUMBER.encode().hex() not in raw.hex()
            assert b"OggS" not in raw
        for m in smtp.mails():
            assert NUMBER not in m.get_content() and NUMBER not in str(m["Subject"])
        _stop(web)
    finally:
        for p in procs:
            _stop(p)
        for rx in receivers:
            rx.stop()
    # the recorder's own start clears it again (whoever notices; the recorder answers)
    if not any(a["code"] == "recorder_not_answering" for a in _alarms(datadir)):
        pytest.fail("the alarm vanished without the recorder coming back")
