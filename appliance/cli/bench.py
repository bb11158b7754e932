"""``appliance bench …``: benchmarks that print figures, never assert them."""

from __future__ import annotations

import importlib

BENCH_MODULES = (
    "appliance.bench.dsp",
    "appliance.bench.pipeline",
    "appliance.bench.store",
    "appliance.bench.evidence",
)


def register(sub) -> None:
    p = sub.add_parser("bench", help="性能測定 / benchmarks (figures as ratios to a baseline)")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT")
    bsub.required = True
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bsub)
