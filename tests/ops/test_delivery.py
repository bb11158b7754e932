"""Alarms reach a person (issue 16 item 3): rsyslog over TLS, an SMTP server, snmptrapd.

Every receiver is a real server in its own process on loopback, started and
stopped by these fixtures (tests/ops/_receivers.py). A network cut is real:
the receiver processes are stopped, alarms are raised, and they are started
again on the same ports.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _receivers import (SNMP_AUTH, SNMP_ENGINE_ID, SNMP_PRIV, SNMP_USER, Rsyslog,  # noqa: E402
                        SmtpServer, TrapReceiver, make_ca, snmp_text, wait_for)
from appliance.clock import SystemClock  # noqa: E402
from appliance.config import Config, SiteConfig  # noqa: E402
from appliance.console.commands import ConsoleContext, cmd_alarm  # noqa: E402
from appliance.ops.alarms import AlarmCode, AlarmRegistry  # noqa: E402
from appliance.ops.delivery import load_paths  # noqa: E402
from appliance.ops.delivery.outbox import Deliverer  # noqa: E402
from appliance.ops.delivery.snmp import NOTIFICATIONS, OBJECTS  # noqa: E402
from appliance.store.datadir import DataDir  # noqa: E402

SITE = "東庁舎"
NUMBER = "0263345000"


@pytest.fixture
def receivers(tmp_path):
    certs = make_ca(tmp_path / "ca")
    started = []
    try:
        rs = Rsyslog(tmp_path / "rsyslog", certs).start()
        started.append(rs)
        smtp = SmtpServer(tmp_path / "smtp").start()
        started.append(smtp)
        traps = TrapReceiver(tmp_path / "snmptrapd").start()
        started.append(traps)
        yield {"certs": certs, "syslog": rs, "smtp": smtp, "snmp": traps}
    finally:
        for r in started:
            r.stop()


def alarms_table(rx, *, snmp_version="2c", notification="inform", mail_mode="each",
                 tmp: Path | None = None) -> dict:
    snmp = {"host": "127.0.0.1", "port": rx["snmp"].port, "version": snmp_version,
            "notification": notification}
    if snmp_version == "3":
        assert tmp is not None
        (tmp / "auth.key").write_text(SNMP_AUTH)
        (tmp / "priv.key").write_text(SNMP_PRIV)
        snmp.update(user=SNMP_USER, auth_key_file=str(tmp / "auth.key"),
                    priv_key_file=str(tmp / "priv.key"), engine_id=SNMP_ENGINE_ID)
    return {
        "syslog": {"host": "127.0.0.1", "port": rx["syslog"].port,
                   "ca_file": str(rx["certs"]["ca"]), "server_name": "localhost"},
        "mail": {"host": "127.0.0.1", "port": rx["smtp"].port,
                 "from": "rokuon-east@city.example.jp", "to": ["jinji@city.example.jp"],
                 "addressee": "松本市 総務部 人事課 御中", "mode": mail_mode, "min_severity": "info",
                 "digest_at": "00:00"},
        "snmp": snmp,
    }


def _deliverer(datadir, table, registry=None, owner=None) -> Deliverer:
    clock = SystemClock()
    cat = DataDir(datadir).open_catalog(clock.now())
    paths = load_paths(table, Path("/"), clock.now)
    return Deliverer(cat, paths.senders, now=clock.now, monotonic=clock.monotonic, site=SITE,
                     host="rec-east-1", registry=registry, min_severity=paths.min_severity,
                     digest=paths.digest, alarm_after_s=0.0, owner=owner)


def _registry(datadir) -> AlarmRegistry:
    clock = SystemClock()
    return AlarmRegistry(DataDir(datadir).open_catalog(clock.now()), clock.now)


def _seqs_syslog(rs) -> list[int]:
    import re
    return [int(re.search(r'seq="(\d+)"', m["sd"]).group(1)) for m in rs.messages()]


def _seqs_mail(smtp) -> list[int]:
    import re
    return [int(re.search(r"alarm-(\d+)-", m["Message-ID"]).group(1)) for m in smtp.mails()]


def _seqs_snmp(traps) -> list[int]:
    return [int(n["vars"][f".{OBJECTS['seq']}"].split(": ")[1]) for n in traps.notifications()]


def test_a_raised_alarm_arrives_at_each_receiver_parsed_and_decoded(datadir, receivers):
    reg = _registry(datadir)
    reg.raise_(AlarmCode.DEVICE_LOST, "usb0", "回線インタフェースが応答しません")
    d = _deliverer(datadir, alarms_table(receivers))
    assert d.run_once() == 3

    # rsyslog parsed it as RFC 5424 (protocol version 1), with our MSGID and SD-ID
    msg = wait_for(lambda: receivers["syslog"].messages(), what="the syslog message")[0]
    assert msg["v"] == "1" and msg["app"] == "appliance" and msg["host"] == "rec-east-1"
    assert msg["msgid"] == "ALARM_RAISED" and msg["pri"] == str(16 * 8 + 2)   # local0.crit
    assert msg["sd"].startswith("[alarm@32473 ") and 'code="device_lost"' in msg["sd"]
    assert f'site="{SITE}"' in msg["sd"]
    assert "インタフェース切断" in msg["msg"] and "usb0" in msg["msg"]

    # the mail: a Japanese subject encoded for any relay, decoded back by the reader
    mail = wait_for(lambda: receivers["smtp"].mails(), what="the mail")[0]
    raw = receivers["smtp"].raw()
    assert b"=?utf-8?" in raw.split(b"\n\n")[0].lower() or b"=?UTF-8?" in raw
    assert mail["Subject"] == "【警報・重大】東庁舎 通話録音装置: インタフェース切断 (usb0)"
    body = mail.get_content()
    assert body.startswith("松本市 総務部 人事課 御中")
    assert "重要度　: 重大 (critical)" in body and "対象　　: usb0" in body
    assert "年" in body and "日(" in body            # 2026年12月8日(火) 10:02

    # snmptrapd: an acknowledged v2c inform with our notification OID and objects
    n = wait_for(lambda: receivers["snmp"].notifications(), what="the inform")[0]
    assert n["kind"].startswith("INFORM, SNMP v2c")
    assert n["oid"] == f".{NOTIFICATIONS['raised']}"
    v = {k: snmp_text(x) for k, x in n["vars"].items()}
    assert v[f".{OBJECTS['code']}"] == "device_lost" and v[f".{OBJECTS['subject']}"] == "usb0"
    assert v[f".{OBJECTS['severity']}"] == "INTEGER: 4" and v[f".{OBJECTS['site']}"] == SITE
    assert "インタフェース切断" in v[f".{OBJECTS['text']}"]
    # nothing more to send: each once
    assert d.run_once() == 0


@pytest.mark.parametrize("notification", ["trap", "inform"])
def test_snmp_v3_authenticated_and_encrypted(datadir, receivers, tmp_path, notification):
    _registry(datadir).raise_(AlarmCode.ON_BATTERY, "", "停電")
    table = {"snmp": alarms_table(receivers, snmp_version="3", notification=notification,
                                  tmp=tmp_path)["snmp"]}
    assert _deliverer(datadir, table).run_once() == 1
    n = wait_for(lambda: receivers["snmp"].notifications(), what="the v3 notification")[0]
    kind = "TRAP2" if notification == "trap" else "INFORM"
    assert n["kind"].startswith(f"{kind}, SNMP v3, user {SNMP_USER}")
    assert n["oid"] == f".{NOTIFICATIONS['raised']}"
    assert snmp_text(n["vars"][f".{OBJECTS['code']}"]) == "on_battery"


def test_alarms_raised_during_a_cut_arrive_after_it_in_order_each_once(datadir, receivers):
    """The cut is real (every receiver process stopped) and scaled down to seconds: the
    outbox's cursor waits for the path, whatever the cut's length (docs/alarms.md)."""
    reg = _registry(datadir)
    d = _deliverer(datadir, alarms_table(receivers), registry=_registry(datadir))
    reg.raise_(AlarmCode.DISK_NEARLY_FULL, "", "空き 1500 MB")
    assert d.run_once() == 3                                  # before the cut
    for r in ("syslog", "smtp", "snmp"):
        receivers[r].stop()
    reg.raise_(AlarmCode.DEVICE_LOST, "usb0")
    reg.raise_(AlarmCode.LINE_DEAD, "T1/1")
    reg.clear(AlarmCode.DEVICE_LOST, "usb0")
    for _ in range(2):                                        # tries during the cut: all fail
        d._pause_until.clear()
        assert d.run_once() == 0
    state = {s["channel"]: s for s in d.outbox.state()}
    assert all(state[c]["failing_since"] and state[c]["waiting"] >= 3
               for c in ("syslog", "mail", "snmp"))
    # failing longer than delivery_alarm_s (0 here): the appliance says so itself
    assert {a.subject for a in reg.active() if a.code == "delivery_failing"} == {
        "syslog", "mail", "snmp"}
    for r in ("syslog", "smtp", "snmp"):
        receivers[r].start()
    d._pause_until.clear()
    wait_for(lambda: d.run_once() == 0 and not any(s["waiting"] for s in d.outbox.state()),
             timeout=60, every=0.5, what="the outbox to drain")
    # every event once, in the order raised (seq = outbox id), on every path
    expected = [r[0] for r in d.outbox.catalog.conn.execute(
        "SELECT id FROM alarm_events ORDER BY id")]
    for seqs in (lambda: _seqs_syslog(receivers["syslog"]), lambda: _seqs_mail(receivers["smtp"]),
                 lambda: _seqs_snmp(receivers["snmp"])):
        wait_for(lambda: len(seqs()) >= len(expected), what="the receiver to write")
        assert seqs() == expected
    assert not [a for a in reg.active() if a.code == "delivery_failing"]


def test_two_deliverers_send_each_event_once(datadir, receivers):
    """The recorder and the web service both run a deliverer: the lease lets one send."""
    reg = _registry(datadir)
    table = {"syslog": alarms_table(receivers)["syslog"]}
    a, b = _deliverer(datadir, table, owner="recorder"), _deliverer(datadir, table, owner="web")
    for i in range(3):
        reg.raise_(AlarmCode.NOTICE_NOT_HEARD, f"T{i + 1}/1")
        assert a.run_once() + b.run_once() == 1
    wait_for(lambda: len(receivers["syslog"].messages()) == 3, what="three messages")
    assert sorted(_seqs_syslog(receivers["syslog"])) == _seqs_syslog(receivers["syslog"])
    a.stop()                       # the holder goes away: the other takes over
    reg.raise_(AlarmCode.ON_BATTERY)
    assert b.run_once() == 1


def test_daily_digest_lists_the_day_and_goes_once(datadir, receivers):
    reg = _registry(datadir)
    reg.raise_(AlarmCode.ON_BATTERY, "", "停電")
    reg.clear(AlarmCode.ON_BATTERY)
    table = {"mail": alarms_table(receivers, mail_mode="digest")["mail"]}
    d = _deliverer(datadir, table)
    d.run_once()
    d.run_once()                                          # the same day: no second digest
    mails = wait_for(lambda: receivers["smtp"].mails(), what="the digest")
    assert len(mails) == 1
    assert mails[0]["Subject"].startswith("【警報日報】") and "2 件" in mails[0]["Subject"]
    body = mails[0].get_content()
    assert "停電 (バッテリー運転)" in body and "発生" in body and "解除" in body


def test_console_alarm_test_reports_each_path(datadir, receivers, tmp_path):
    receivers["smtp"].stop()                                 # one path down
    clock = SystemClock()
    config = Config(site=SiteConfig(name=SITE), raw={"alarms": alarms_table(receivers)},
                    source=tmp_path / "appliance.toml")
    out: list[str] = []
    cat = DataDir(datadir).open_catalog(clock.now())
    ctx = ConsoleContext(datadir, config, cat, lambda argv: None, clock.now, out.append,
                         lambda q: "", actor="hoshu1 (保守 technician)")
    cmd_alarm(ctx, "test")
    text = "".join(out)
    assert "syslog: 送信成功 / OK" in text and "snmp: 送信成功 / OK" in text
    assert "mail: 失敗 / FAILED" in text and "ConnectionRefusedError" in text
    msg = wait_for(lambda: receivers["syslog"].messages(), what="the test message")[0]
    assert msg["msgid"] == "ALARM_TEST"
    n = wait_for(lambda: receivers["snmp"].notifications(), what="the test inform")[0]
    assert n["oid"] == f".{NOTIFICATIONS['test']}"
    entry = cat.conn.execute("SELECT detail FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()[0]
    assert '"alarm test"' in entry and '"mail": "failed"' in entry


def test_no_number_in_anything_delivered(datadir, receivers):
    """Even a detail that carries a number by mistake leaves the appliance masked."""
    reg = _registry(datadir)
    reg.raise_(AlarmCode.NOTICE_NOT_HEARD, "T1/1", f"発信者 {NUMBER} / caller 0263-34-5000")
    _deliverer(datadir, alarms_table(receivers)).run_once()
    wait_for(lambda: receivers["snmp"].notifications() and receivers["smtp"].mails()
             and receivers["syslog"].messages(), what="all three deliveries")
    for r in ("syslog", "smtp", "snmp"):
        raw = receivers[r].raw()
        text = raw.decode("utf-8", errors="replace")
        hexed = raw.hex()
        assert NUMBER not in text and "0263-34-5000" not in text, r
        assert NUMBER.encode().hex() not in hexed, r
    # the mail body is base64: decode it before looking
    body = receivers["smtp"].mails()[0].get_content()
    assert NUMBER not in body and "######" in body


@pytest.mark.slow
def test_a_long_cut_with_the_deliverer_running_on_its_own(datadir, receivers):
    """75 s of cut with the deliverer's own thread and real pauses (2, 4 … capped at 60 s):
    what was raised during it arrives after it, in order, each once, with no help."""
    reg = _registry(datadir)
    clock = SystemClock()
    paths = load_paths(alarms_table(receivers), Path("/"), clock.now)
    d = Deliverer(DataDir(datadir).open_catalog(clock.now()), paths.senders, now=clock.now,
                  monotonic=clock.monotonic, site=SITE, host="rec-east-1",
                  min_severity=paths.min_severity, poll_s=0.5).start()
    try:
        for r in ("syslog", "smtp", "snmp"):
            receivers[r].stop()
        cut_at = time.monotonic()
        for i in range(5):
            reg.raise_(AlarmCode.LINE_DEAD, f"T{i + 1}/1")
            time.sleep(5)
        while time.monotonic() - cut_at < 75:
            time.sleep(1)
        for r in ("syslog", "smtp", "snmp"):
            receivers[r].start()
        expected = [r[0] for r in d.outbox.catalog.conn.execute(
            "SELECT id FROM alarm_events ORDER BY id")]
        assert len(expected) == 5
        for seqs in (lambda: _seqs_syslog(receivers["syslog"]),
                     lambda: _seqs_mail(receivers["smtp"]),
                     lambda: _seqs_snmp(receivers["snmp"])):
            wait_for(lambda: len(seqs()) >= len(expected), timeout=90, every=1,
                     what="delivery after the cut")
            assert seqs() == expected
    finally:
        d.stop()
