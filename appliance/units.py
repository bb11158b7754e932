"""Types that carry units, so a spec reads in the units of its standard."""

from __future__ import annotations

from typing import NewType

Hz = NewType("Hz", float)
Seconds = NewType("Seconds", float)
Milliseconds = NewType("Milliseconds", float)
DBm0 = NewType("DBm0", float)        # level relative to the digital milliwatt
DBFS = NewType("DBFS", float)        # level relative to a full-scale sine
Decibels = NewType("Decibels", float)
Baud = NewType("Baud", float)
SampleRate = NewType("SampleRate", int)

#: every line-audio leg the appliance handles is 8 kHz
LINE_RATE: SampleRate = SampleRate(8000)
#: 20 ms at 8 kHz: the capture loop's period and Opus's frame
FRAME_SAMPLES = 160
