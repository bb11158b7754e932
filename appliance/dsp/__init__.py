# --- FSK caller ID (fsk.py, callerid.py) ---
from appliance.dsp.fsk import BELL202, V23, FskChar, FskReceiver, FskSpec, fsk_modulate  # noqa: E402,F401
from appliance.dsp.callerid import (  # noqa: E402,F401
    AbsentReason, CallerIdMessage, CallerIdReceiver, CallerIdSpec, Standard,
    clip_frame, decode_caller_id, encode_caller_id, jclip_frame,
)
