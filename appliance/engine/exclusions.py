"""Exclusions (R5): calls that are not recorded and get no notice, such as 「こころの鈴」.

An exclusion matches when every key it gives matches the call; any matching
exclusion excludes the call. Numbers are only known after caller ID or
dialling, so the engine asks again as it learns more (``decide``).
"""

from __future__ import annotations

from appliance.config import Exclusion


def matching(exclusions: tuple[Exclusion, ...], trunk: str, channel: int,
             far_number: str | None, called_number: str | None) -> Exclusion | None:
    for ex in exclusions:
        if ex.trunk is not None and ex.trunk != trunk:
            continue
        if ex.channel is not None and ex.channel != channel:
            continue
        if ex.far_number is not None and ex.far_number != far_number:
            continue
        if ex.called_number is not None and ex.called_number != called_number:
            continue
        return ex
    return None
