"""Alarm delivery: the durable outbox and its paths (syslog over TLS, mail, SNMP)."""

from appliance.ops.delivery.message import ENTERPRISE_PEN, AlarmMessage, ja_datetime
from appliance.ops.delivery.outbox import Deliverer, Outbox, describe_state
from appliance.ops.delivery.settings import DeliveryPaths, load_paths, start_deliverer
from appliance.ops.delivery.test import send_test

__all__ = ["AlarmMessage", "Deliverer", "DeliveryPaths", "ENTERPRISE_PEN", "Outbox",
           "describe_state", "ja_datetime", "load_paths", "send_test", "start_deliverer"]
