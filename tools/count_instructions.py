#!/usr/bin/env python3
"""Instructions per call-second, counted by valgrind's callgrind, for the
Raspberry Pi 4 projection in docs/performance.md (no hardware counters here:
``perf stat`` reports them unsupported in this VM).

Four runs under callgrind: the benchmark's own pipeline rig with a short and a
long throughput window, and the bare opuslib loop with a short and a long
piece of the same audio. The differences remove start-up, imports and
warm-up, so what is left is the steady cost of ``window`` seconds of calls.
Per thread (``--separate-threads``): the capture thread's share bounds what
one core of the target can carry however many cores it has.

Bounded: about five to ten minutes here (callgrind runs some 50 times slower);
writes only in a temporary directory, removed at the end.

Run: .venv/bin/python tools/count_instructions.py [--calls 4] [--window 8]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHORT_S = 2.0
#: audio made in every run (covers the longest window, warm-up included)
AUDIO_S = 60.0
#: a callgrind child taking longer than this is stopped
CHILD_TIMEOUT_S = 1800


def child(kind: str, calls: int, seconds: float) -> None:
    """What runs under callgrind."""
    from appliance.bench import _ceilings, _rig, pipeline
    from appliance.store.opus import EncoderSettings
    from appliance.units import LINE_RATE
    # the same amount of audio is made in every run, whatever the window, so
    # that making it cancels out in the difference
    if kind == "pipeline":
        pipeline.run(calls=(calls,), seconds=seconds, paced_seconds=1.0, latency_calls=calls,
                     ceiling_seconds=AUDIO_S, late_calls=0, repeats=1)
    else:
        far, near = _rig.talk_legs(AUDIO_S)
        n = int(seconds * LINE_RATE)
        _ceilings.bare_opuslib(far[:n], near[:n], EncoderSettings(), repeats=1)


def _counts(out: Path) -> dict[str, int]:
    """Instructions per thread from callgrind's per-thread files (name → Ir)."""
    counts = {}
    for f in sorted(out.parent.glob(out.name + "*")):
        text = f.read_text(errors="replace")
        m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        if m:
            counts[f.name] = int(m.group(1))
    return counts


def measure(kind: str, calls: int, seconds: float, work: Path) -> dict[str, int]:
    (work / f"{kind}-{seconds:g}").mkdir()
    out = work / f"{kind}-{seconds:g}" / "cg"
    cmd = ["valgrind", "--tool=callgrind", "--separate-threads=yes",
           f"--callgrind-out-file={out}", sys.executable, __file__, "--child", kind,
           "--calls", str(calls), "--window", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        raise SystemExit(f"callgrind run failed ({kind}, {seconds} s):\n{done.stderr[-2000:]}")
    return _counts(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=4)
    ap.add_argument("--window", type=float, default=8.0, help="seconds measured (difference)")
    ap.add_argument("--child", choices=("pipeline", "bare"))
    args = ap.parse_args()
    if not 1 <= args.calls <= 16 or not 1.0 <= args.window <= 30.0:
        raise SystemExit("--calls 1..16, --window 1..30")
    if args.child:
        child(args.child, args.calls, args.window)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    work = Path(tempfile.mkdtemp(prefix="appliance-callgrind-"))
    try:
        res = {}
        for kind, calls in (("pipeline", args.calls), ("bare", 1)):
            short = measure(kind, calls, SHORT_S, work)
            long = measure(kind, calls, SHORT_S + args.window, work)
            total = sum(long.values()) - sum(short.values())
            # threads in start order: the first file is the main (capture) thread
            first_long, first_short = (next(iter(d.values())) for d in (long, short))
            call_s = calls * args.window
            res[kind] = {"instructions_per_call_s": total / call_s,
                         "main_thread_per_call_s": (first_long - first_short) / call_s,
                         "threads": len(long)}
        res["ratio_pipeline_to_bare"] = (res["pipeline"]["instructions_per_call_s"]
                                         / res["bare"]["instructions_per_call_s"])
        print(json.dumps(res, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
