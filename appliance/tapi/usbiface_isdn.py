"""``isdn://CTL?…``: the USB interface whose trunks are ISDN unless ``trunks`` says otherwise."""

from __future__ import annotations

from pathlib import Path

from appliance.clock import Clock
from appliance.tapi.usbiface import UsbInterface, open_url


def open(rest: str, clock: Clock, base_dir: Path) -> UsbInterface:   # noqa: A001 (registry hook)
    return open_url("alsa+serial://" + rest, clock, default_kind="isdn")
