"""``alarm test``: one test alarm through every configured path, each result reported.

Sent directly, not through the outbox: the technician wants the answer of
each path now. The console writes the results to the ledger.
"""

from __future__ import annotations

from datetime import datetime

from appliance.ops.alarms import AlarmCode, label
from appliance.ops.delivery.message import AlarmMessage
from appliance.ops.delivery.settings import DeliveryPaths


def send_test(paths: DeliveryPaths, site: str, host: str, now: datetime,
              actor: str) -> dict[str, str]:
    """{path: "ok" | "failed: reason"} for every configured path (empty when none is)."""
    m = AlarmMessage(0, "test", now, str(AlarmCode.ALARM_TEST), "info", "",
                     f"{label(AlarmCode.ALARM_TEST)}: 保守コンソールから送信 / sent from the "
                     f"console by {actor}", site, host)
    results = {}
    for name, sender in paths.test_targets().items():
        try:
            sender.send(m)
            results[name] = "ok"
        except Exception as exc:         # noqa: BLE001 — report every failure as it is
            results[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    return results
