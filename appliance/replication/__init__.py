"""Replication from an appliance to the city archive: the durable outbox and its sender."""

from appliance.replication.outbox import OUTBOX_FILE, Item, Outbox

__all__ = ["OUTBOX_FILE", "Item", "Outbox"]
