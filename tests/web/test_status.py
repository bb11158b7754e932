"""装置の状態: the alarms staff see are the registry's, raised and cleared with their cause."""

from __future__ import annotations

from datetime import datetime, timezone

from appliance.governance.ledger import EntryKind, Ledger
from appliance.ops.alarms import AlarmCode, AlarmRegistry
from appliance.store.catalog import Catalog

from _office import login


def test_status_shows_active_alarms_only(client, office):
    d, _ = office
    assert login(client, "kacho").status_code == 200
    now = lambda: datetime.now(timezone.utc)  # noqa: E731
    with Catalog.open(d / "catalog.sqlite", now()) as cat:
        # a maintenance act is not an alarm
        Ledger(cat).append(EntryKind.MAINTENANCE, now(), actor="hoshu",
                           detail={"action": "console status"})
        AlarmRegistry(cat, now).raise_(AlarmCode.DEVICE_LOST, "usb0")
    status = client.get("/api/status").json()
    codes = [a.get("code") for a in status["alarms"]]
    assert codes == ["device_lost"]
    assert "usb0" in status["alarms"][0]["message"]
    assert status["recorder_running"] is False
    page = client.get("/status").text
    assert "usb0" in page and "recorder not answering" in page
    with Catalog.open(d / "catalog.sqlite", now()) as cat:
        AlarmRegistry(cat, now).clear(AlarmCode.DEVICE_LOST, "usb0")
    assert client.get("/api/status").json()["alarms"] == []


def test_ledger_csv_download_is_the_paper_kanribo(client):
    import csv
    import io
    assert login(client, "kacho").status_code == 200
    r = client.get("/api/ledger/csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith(b"\xef\xbb\xbf")             # BOM for Japanese Excel
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:8] == ["日時", "区分", "対象通話", "根拠", "参照番号", "提供先", "実施者", "承認者"]
    assert rows[1][1] == "初期設定" and rows[1][6] == "kacho"
