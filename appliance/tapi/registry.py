"""``open_interface(url)``: the backend is data, chosen by the URL's scheme (like pyserial).

The simulator is never chosen by default: a configuration that names no
interface is refused, so a real appliance cannot silently record a scenario.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from appliance.clock import Clock
from appliance.errors import UnknownInterface
from appliance.tapi.contract import LineInterface

#: scheme -> module with ``open(url_rest, clock, base_dir) -> LineInterface``
BACKENDS = {"sim": "appliance.tapi.sim.interface",
            "alsa+serial": "appliance.tapi.usbiface",     # the USB interface (issue 5)
            "isdn": "appliance.tapi.usbiface_isdn",       # the same device, ISDN trunks by default
            "gpio": "appliance.tapi.gpio"}                # the single-line GPIO variant
#: schemes the design names whose backends are not built yet
PLANNED: tuple[str, ...] = ()


def open_interface(url: str, clock: Clock, base_dir: Path | None = None) -> LineInterface:
    """Open the interface named by ``url``; relative paths resolve against ``base_dir``."""
    scheme = urlsplit(url).scheme if "://" in url else ""
    if scheme in PLANNED:
        raise UnknownInterface(
            f"{url}: このインタフェースはまだ実装されていません / backend {scheme!r} is not "
            "available in this build (hardware issue)")
    if scheme not in BACKENDS:
        raise UnknownInterface(
            f"{url}: 不明なインタフェース / unknown interface URL (known: "
            f"{', '.join(s + '://' for s in BACKENDS)})")
    module = importlib.import_module(BACKENDS[scheme])
    return module.open(url.split("://", 1)[1], clock, base_dir or Path.cwd())
