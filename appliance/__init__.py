"""Firmware of the call-recorder appliance (通話録音装置) for Japanese city halls.

Layers, top to bottom (docs/architecture.md): tapi (line interfaces), dsp
(signal processing), engine (capture and calls), store (recordings and
catalog), governance (the city's rules), and the front ends (cli, web,
console).
"""

__version__ = "0.1.0"
