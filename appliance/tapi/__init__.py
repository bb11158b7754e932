"""Line interfaces: the contract and the backends, chosen by URL. Re-exports only."""

from appliance.tapi.contract import (EventKind, Frame, LineEvent, LineInfo, LineInterface,
                                     LineKind, Period)
from appliance.tapi.registry import open_interface

__all__ = ["EventKind", "Frame", "LineEvent", "LineInfo", "LineInterface", "LineKind",
           "Period", "open_interface"]
