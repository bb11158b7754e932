#!/usr/bin/env python3
"""Print docs/dsp.md's measured tables: our detectors next to libspandsp 0.0.6
on the same signals (tests/dsp/_spandsp_dtmf.py builds them).  Bounded: about
15 s on the project's machine.  Run: .venv/bin/python tools/measure_dsp.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "dsp"))

import _spandsp_dtmf as R  # noqa: E402
from appliance.dsp import detect_tones, gen  # noqa: E402


def span(values, hits) -> str:
    v = np.asarray(values)[np.asarray(hits)]
    return f"{v.min():g} … {v.max():g}" if v.size else "none"


def dtmf_tables() -> None:
    print("### DTMF (μ-law munged; ours | spandsp default parameters)\n")
    print("| category | stimulus | ours | spandsp 0.0.6 |")
    print("|---|---|---|---|")
    b = R.level_sweep("1")
    o, s = R.both(b)
    print(f"| dynamic range | digit 1, +3 … −50 dBm0 per tone | {span(R.LEVELS, o)} dBm0 "
          f"({o.sum()} dB) | {span(R.LEVELS, s)} dBm0 ({s.sum()} dB) |")
    for dg in "159D":
        for grp in ("low", "high"):
            b, offs = R.bandwidth_sweep(dg, grp)
            o, s = R.both(b)
            ro, rs = R.rrb_rcfo(o), R.rrb_rcfo(s)
            print(f"| frequency, {grp} group | digit {dg}, −17 dBm0, ±6 % in 0.1 % | "
                  f"{span(offs * 100, o)} % (RRB {ro[0]:.1f}, RCFO {ro[1]:+.1f}) | "
                  f"{span(offs * 100, s)} % (RRB {rs[0]:.1f}, RCFO {rs[1]:+.1f}) |")
    for dg in "159D":
        for louder, name in (("low", "normal (low louder)"), ("high", "reverse (high louder)")):
            b = R.twist_sweep(dg, louder)
            o, s = R.both(b)
            first_o = R.TWIST_STEPS[~o][0] if (~o).any() else 20
            first_s = R.TWIST_STEPS[~s][0] if (~s).any() else 20
            print(f"| twist {name} | digit {dg}, 0 … 20 dB in 0.1 dB | all to {first_o - 0.1:.1f} dB "
                  f"({o.sum()} hits) | all to {first_s - 0.1:.1f} dB ({s.sum()} hits) |")
    snr = list(range(26, 3, -1))
    fo, fs = R.all_pass_snr(snr, 1000)
    print(f"| S/N (all 1000 bursts) | digit 1 at −4 dBm0, white noise | {fo} dB | {fs} dB |")
    durations = np.arange(49, 9, -1)
    parts = [np.concatenate((gen.silence(lead / 8), gen.dtmf("1", -10, on=ms, off=0)))
             for ms in durations for lead in range(0, 102, 11)]
    b = R.bursts(parts, ["1"] * len(parts), slot_ms=120)
    o, s = R.both(b)
    o, s = o.reshape(len(durations), -1), s.reshape(len(durations), -1)
    print(f"| duration | digit 1, 49 … 10 ms, 10 alignments | always ≥ {durations[o.all(1)].min()} ms, "
          f"never ≤ {durations[~o.any(1)].max()} ms | always ≥ {durations[s.all(1)].min()} ms, "
          f"never ≤ {durations[~s.any(1)].max()} ms |")
    d = gen.dtmf(R.ALL_DIGITS * 10, level=-15).astype(float)
    for name, mk in (("400 Hz (Japan)", lambda lv: gen.sine(400, lv, d.size / 8)),
                     ("350+440 Hz (US)", lambda lv: gen.sine(350, lv, d.size / 8)
                      + gen.sine(440, lv, d.size / 8))):
        best = [None, None]
        for lv in range(-30, 0):
            o, s = R.both(R.Bursts(gen.saturate(d + mk(lv)), 800, list(R.ALL_DIGITS * 10)))
            best[0] = lv if o.all() else best[0]
            best[1] = lv if s.all() else best[1]
        fmt = lambda v: "none" if v is None else f"{v} dBm0 (digits {-15 - v:+d} dB)"  # noqa: E731
        print(f"| dial tone {name} | 16 digits × 10 at −15 dBm0 | up to {fmt(best[0])} | "
              f"up to {fmt(best[1])} |")
    speech = R.espeak_corpus_cached()
    hours = speech.size / 8000 / 3600
    o, s = R.talk_off_hits(speech)
    print(f"| talk-off, espeak-ng | {speech.size / 8000:.0f} s, 10 voices/languages incl. ja, "
          f"2 pitches | {o} hits ({o / hours:.0f}/h) | {s} hits ({s / hours:.0f}/h) |")
    sl = gen.speech_like(600, level=-15, seed=11)
    o, s = R.talk_off_hits(sl)
    print(f"| talk-off, speech-like generator | 600 s | {o} hits ({o * 6}/h) | {s} hits ({s * 6}/h) |")


def tone_table() -> None:
    print("\n### Call-progress tones (ours; spandsp has no Japanese progress detector)\n")
    print("| signal | recognised as, start … end (s) |")
    print("|---|---|")
    sigs = {
        "spandsp tone_gen 384+416 Hz 1 s/2 s, 10 s": R.spandsp_tone(384, -15, 416, -15, 1000, 2000, 0, 0, 10000),
        "spandsp tone_gen 400 Hz 0.5/0.5 s, 6 s": R.spandsp_tone(400, -15, 0, 0, 500, 500, 0, 0, 6000),
        "spandsp tone_gen 400 Hz continuous, 5 s": R.spandsp_tone(400, -20, 0, 0, 5000, 0, 0, 0, 5000),
        "ours: ringback −35 dBm0 (AM peak), 7 s": gen.call_progress("ringback", 7.0, level=-35),
        "ours: busy, cadence +15 %, 5 s": gen.call_progress("busy", 5.0, cadence=(575, 575)),
        "espeak-ng speech corpus": R.espeak_corpus_cached(),
        "speech-like generator, 300 s": gen.speech_like(300, level=-15, seed=21),
    }
    for name, x in sigs.items():
        got = detect_tones(R.munge(np.concatenate((x, gen.silence(3000)))))
        desc = ", ".join(f"{e.tone} {e.start_s:.2f} … {e.end_s:.2f}" for e in got) or "nothing"
        print(f"| {name} | {desc} |")


def other_tables() -> None:
    import warnings
    from appliance.dsp import LevelMeter, RingCadenceClassifier, RingCadence, g711, level_dbm0
    print("\n### Ring cadence (ring-detector edges; spandsp has no equivalent)\n")
    print("| input | classified | decided at (s) |")
    print("|---|---|---|")
    for name, edges in (
            ("normal 1 s / 2 s, single edges", gen.ringing_edges("normal", 3)),
            ("normal, 32 Hz opto pulses", gen.ringing_edges("normal", 3, pulse_hz=32)),
            ("CAR 0.5 / 0.5 then normal at 5 s", gen.ringing_edges("car", 3)
             + gen.ringing_edges("normal", 2, start=5.0)),
            ("CAR 0.3 / 0.3", gen.ringing_edges("car", 2, on=0.3, off=0.3))):
        ev = [e for e in RingCadenceClassifier().feed(edges, until=30) if isinstance(e, RingCadence)]
        print(f"| {name} | {', '.join(str(e.kind) for e in ev)} | "
              f"{', '.join(f'{e.at_s:.2f}' for e in ev)} |")
    print("\n### Level (ours next to spandsp's generator)\n")
    x = R.spandsp_generate([("5", -10, 0, 1000, 0)])[800:7200]
    meter = [f.level_dbm0 for f in LevelMeter().feed(gen.saturate(gen.sine(1004, 0.0, 1000)))]
    print("| signal | expected | ours |")
    print("|---|---|---|")
    print(f"| 1004 Hz sine at 0 dBm0 (ours) | 0.00 dBm0 | {min(meter):.2f} … {max(meter):.2f} dBm0 |")
    print(f"| spandsp dtmf_tx digit 5, −10 dBm0 per tone | −6.99 dBm0 | {level_dbm0(x):.2f} dBm0 |")
    print("\n### G.711 (all 65 536 inputs, all 256 codes)\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop
    t = R.spandsp_g711_tables()
    allx = np.arange(-32768, 32768).astype(np.int16)
    codes = np.arange(256, dtype=np.uint8)
    print("| table | differences vs spandsp | differences vs audioop |")
    print("|---|---|---|")
    for law in ("ulaw", "alaw"):
        enc = getattr(g711, f"linear_to_{law}")(allx)
        ref = np.frombuffer(getattr(audioop, f"lin2{law}")(allx.tobytes(), 2), np.uint8)
        print(f"| {law} encode | {int((enc != t[law + '_enc']).sum())} | {int((enc != ref).sum())} |")
        dec = getattr(g711, f"{law}_to_linear")(codes)
        ref = np.frombuffer(getattr(audioop, f"{law}2lin")(codes.tobytes(), 2), "<i2")
        print(f"| {law} decode | {int((dec != t[law + '_dec']).sum())} | {int((dec != ref).sum())} |")


if __name__ == "__main__":
    R.build()
    dtmf_tables()
    tone_table()
    other_tables()
