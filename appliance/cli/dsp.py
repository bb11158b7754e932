"""``appliance dsp …``: run the line-signal detectors on WAV files.

For technicians and tests. Each detector family registers its own
sub-commands from a module of its own, so they can grow independently.
"""

from __future__ import annotations

import importlib

DSP_COMMAND_MODULES = (
    "appliance.cli.dsp_dtmf",      # dtmf, tones
    "appliance.cli.dsp_callerid",  # caller-id
)


def register(sub) -> None:
    p = sub.add_parser("dsp", help="回線信号の解析 / decode line signals in WAV files")
    dsp_sub = p.add_subparsers(dest="dsp_command", metavar="DETECTOR")
    dsp_sub.required = True
    for name in DSP_COMMAND_MODULES:
        importlib.import_module(name).register(dsp_sub)
