"""Alarms as records (issue 16 item 2): severity, acknowledgement, the ledger, the outbox."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from appliance.clock import FakeClock
from appliance.governance.ledger import Ledger
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.store.datadir import DataDir

CONTRACT = {"code", "severity", "raised_at", "cleared_at", "acknowledged_by", "text"}


def _registry(datadir, actor="recorder"):
    clock = FakeClock(datetime(2026, 12, 8, 1, 2, tzinfo=timezone.utc))
    cat = DataDir(datadir).open_catalog(clock.now())
    return AlarmRegistry(cat, clock.now, actor=actor), cat, clock


def _alarm_entries(cat) -> list[dict]:
    return [json.loads(e["detail"]) | {"actor": e["actor"]}
            for e in Ledger(cat).entries() if e["kind"] == "alarm"]


def test_raise_clear_and_ack_are_each_on_the_ledger_and_in_the_outbox(datadir, run_cli):
    reg, cat, clock = _registry(datadir)
    assert reg.raise_(AlarmCode.DEVICE_LOST, "usb0", "回線インタフェースが応答しません")
    clock.advance(5)
    assert not reg.raise_(AlarmCode.DEVICE_LOST, "usb0", "again")   # a refresh: counted only
    clock.advance(5)
    assert reg.clear(AlarmCode.DEVICE_LOST, "usb0") == 1
    entries = _alarm_entries(cat)
    assert [(e["event"], e["code"], e["subject"], e["severity"]) for e in entries] == [
        ("raised", "device_lost", "usb0", "critical"), ("cleared", "device_lost", "usb0",
                                                         "critical")]
    assert all(e["actor"] == "recorder" for e in entries)
    cat.close()

    code, out, err = run_cli("--data-dir", datadir, "alarms", "ack", "device_lost",
                             "--note", "USB ケーブルを差し直した", "--json")
    assert code == 0, err
    acked = json.loads(out)
    assert len(acked) == 1 and acked[0]["acknowledged_by"]
    cat = DataDir(datadir).open_catalog(clock.now())
    last = _alarm_entries(cat)[-1]
    assert last["event"] == "acknowledged" and last["note"] == "USB ケーブルを差し直した"
    assert last["actor"] == acked[0]["acknowledged_by"]
    events = [r[0] for r in cat.conn.execute("SELECT event FROM alarm_events ORDER BY id")]
    assert events == ["raised", "cleared", "acknowledged"]
    # the note (a person's free text) stays on the ledger, not in what is delivered
    assert "USB" not in " ".join(r[0] for r in cat.conn.execute("SELECT text FROM alarm_events"))
    assert Ledger(cat).verify().ok
    cat.close()


def test_alarms_json_contract_raised_first_and_kept_across_restarts(datadir, run_subprocess):
    reg, cat, clock = _registry(datadir)
    reg.raise_(AlarmCode.DISK_NEARLY_FULL, "", "空き 1500 MB")           # warning
    clock.advance(60)
    reg.raise_(AlarmCode.NOTICE_NOT_HEARD, "T1/1")                      # error
    clock.advance(60)
    reg.raise_(AlarmCode.RECORDER_NOT_ANSWERING)                        # critical
    clock.advance(60)
    reg.raise_(AlarmCode.LINE_DEAD, "T2/1")
    clock.advance(60)
    reg.clear(AlarmCode.LINE_DEAD)
    cat.close()
    # another process, as after a reboot: the same records
    r = run_subprocess("--data-dir", datadir, "alarms", "--all", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert all(CONTRACT <= set(row) for row in rows)
    assert [row["code"] for row in rows] == ["recorder_not_answering", "notice_not_heard",
                                             "disk_nearly_full", "line_dead"]
    assert [row["cleared_at"] is None for row in rows] == [True, True, True, False]
    assert rows[0]["severity"] == "critical" and "録音装置の応答なし" in rows[0]["text"]
    assert rows[0]["raised_at"].endswith("+09:00")
    r = run_subprocess("--data-dir", datadir, "alarms", "--json")
    assert [row["code"] for row in json.loads(r.stdout)] == [
        "recorder_not_answering", "notice_not_heard", "disk_nearly_full"]
    # an acknowledged alarm moves behind the unacknowledged ones, still raised
    r = run_subprocess("--data-dir", datadir, "alarms", "ack", "recorder_not_answering",
                       "--note", "点検中")
    assert r.returncode == 0, r.stderr
    r = run_subprocess("--data-dir", datadir, "alarms", "--json")
    assert [row["code"] for row in json.loads(r.stdout)] == [
        "notice_not_heard", "disk_nearly_full", "recorder_not_answering"]


def test_ack_refusals_are_clear_and_change_nothing(datadir, run_subprocess):
    r = run_subprocess("--data-dir", datadir, "alarms", "ack", "no_such_code", "--note", "x")
    assert r.returncode == 2 and "unknown alarm code" in r.stderr and "Traceback" not in r.stderr
    r = run_subprocess("--data-dir", datadir, "alarms", "ack", "device_lost", "--note", "x")
    assert r.returncode == 2 and "nothing to acknowledge" in r.stderr
    reg, cat, _ = _registry(datadir)
    reg.raise_(AlarmCode.DEVICE_LOST, "usb0")
    cat.close()
    r = run_subprocess("--data-dir", datadir, "alarms", "ack", "device_lost", "--note", "  ")
    assert r.returncode == 2 and "note is required" in r.stderr
    r = run_subprocess("--data-dir", datadir, "alarms", "--json")
    assert json.loads(r.stdout)[0]["acknowledged_by"] is None


def test_no_number_reaches_an_alarm_record(datadir):
    reg, cat, _ = _registry(datadir)
    reg.raise_(AlarmCode.NOTICE_NOT_HEARD, "T1/1", "caller 0263-34-5000 did not hear it")
    text = " ".join(r[0] for r in cat.conn.execute("SELECT detail FROM alarms"))
    text += " ".join(r[0] for r in cat.conn.execute("SELECT text FROM alarm_events"))
    text += " ".join(e["detail"] for e in Ledger(cat).entries())
    assert "0263" not in text and "5000" not in text and "######" in text
    cat.close()


def test_an_event_alarm_is_raised_and_cleared_at_once_and_awaits_acknowledgement(datadir):
    reg, cat, clock = _registry(datadir)
    reg.event(AlarmCode.CLOCK_STEPPED, "", "時刻が 120 秒進みました")
    assert not reg.active()
    rows = cat.conn.execute("SELECT cleared_at, acknowledged_at FROM alarms").fetchall()
    assert len(rows) == 1 and rows[0][0] is not None and rows[0][1] is None
    done = reg.acknowledge("clock_stepped", "kacho", "NTP サーバ切替のため")
    assert done[0].acknowledged_by == "kacho"
    clock.advance(timedelta(hours=1).total_seconds())
    cat.close()
