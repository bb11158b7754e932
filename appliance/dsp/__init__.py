"""Line-signal processing: pure numpy, no I/O, no clock.

Each detector is built from a frozen spec in real units and has
``feed(samples) -> events`` and ``reset()``; results do not depend on how
the audio is chunked.  This module only re-exports the public names.
"""

from appliance.dsp.dtmf import DtmfDigit, DtmfReceiver, DtmfSpec, decode_dtmf
from appliance.dsp.g711 import (
    alaw_roundtrip, alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_roundtrip,
    ulaw_to_linear,
)
from appliance.dsp.level import (
    DBM0_FULL_SCALE_SINE, LevelFrame, LevelMeter, LevelSpec, dbm0_to_power, level_dbm0,
    power_to_dbm0, sine_amplitude,
)
from appliance.dsp.ring import (
    RingBurst, RingCadence, RingCadenceClassifier, RingEdge, RingKind, RingSpec, RingStopped,
)
from appliance.dsp.tones import (
    CallProgressDetector, Tone, ToneDetected, ToneEnded, ToneSpec, TonesBank, detect_tones,
)

__all__ = [
    "DtmfDigit", "DtmfReceiver", "DtmfSpec", "decode_dtmf",
    "alaw_roundtrip", "alaw_to_linear", "linear_to_alaw", "linear_to_ulaw",
    "ulaw_roundtrip", "ulaw_to_linear",
    "DBM0_FULL_SCALE_SINE", "LevelFrame", "LevelMeter", "LevelSpec", "dbm0_to_power",
    "level_dbm0", "power_to_dbm0", "sine_amplitude",
    "RingBurst", "RingCadence", "RingCadenceClassifier", "RingEdge", "RingKind", "RingSpec",
    "RingStopped",
    "CallProgressDetector", "Tone", "ToneDetected", "ToneEnded", "ToneSpec", "TonesBank",
    "detect_tones",
]

# --- FSK caller ID (fsk.py, callerid.py) ---
from appliance.dsp.fsk import BELL202, V23, FskChar, FskReceiver, FskSpec, fsk_modulate  # noqa: E402,F401
from appliance.dsp.callerid import (  # noqa: E402,F401
    AbsentReason, CallerIdMessage, CallerIdReceiver, CallerIdSpec, Standard,
    clip_frame, decode_caller_id, encode_caller_id, jclip_frame,
)
