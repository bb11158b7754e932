"""Appliance operations: alarms, the fault LED, live status, systemd's watchdog."""

from appliance.ops.alarms import (ALARMS, ActiveAlarm, AlarmCode, AlarmError, AlarmRecord,
                                  AlarmRegistry, Severity, alarm_history, list_alarms,
                                  read_alarms, redact)
from appliance.ops.leds import FaultLed, GpioFaultLed, NullLed
from appliance.ops.live import LiveServer, LiveState, RecorderUnavailable, query, socket_path
from appliance.ops.status import appliance_status
from appliance.ops.watchdog import CaptureWatchdog, Notifier, sd_notify, watchdog_interval

__all__ = ["ALARMS", "ActiveAlarm", "AlarmCode", "AlarmError", "AlarmRecord", "AlarmRegistry",
           "Severity", "list_alarms", "redact", "CaptureWatchdog", "FaultLed",
           "GpioFaultLed", "LiveServer", "LiveState", "Notifier", "NullLed",
           "RecorderUnavailable", "alarm_history", "appliance_status", "query", "read_alarms",
           "sd_notify", "socket_path", "watchdog_interval"]
