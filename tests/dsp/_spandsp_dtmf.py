"""Bridge to libspandsp's DTMF transmitter/receiver and tone generator, plus the
sweeps of spandsp's ``tests/dtmf_rx_tests.c`` categories, for the tests and
for ``tools/measure_dsp.py`` (so docs/dsp.md's figures come from this code).

Compiles ``tests/dsp/spandsp_dtmf.c`` (ours) against Debian's libspandsp into
``tests/.build/`` when missing or older than its source.  Every signal is
built as one long file of bursts; a detection is credited to the burst whose
slot contains it, so one run of each decoder covers a whole sweep.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from _spandsp_build import SpandspUnavailable, build as _build  # noqa: F401

from appliance.dsp import gen
from appliance.dsp.dtmf import DtmfSpec, decode_dtmf
from appliance.dsp.g711 import ulaw_roundtrip

HERE = Path(__file__).resolve().parent
RATE = 8000
#: no signal handed to either decoder is longer than this (20 minutes)
MAX_SAMPLES = RATE * 1200
ALL_DIGITS = "123A456B789C*0#D"


def build() -> Path:
    """Compile the helper if it is missing or older than its source; return its path."""
    return _build("spandsp_dtmf")


def spandsp_generate(lines: list[tuple[str, int, int, int, int]]) -> np.ndarray:
    """spandsp's dtmf_tx: each line is (digits, low level dBm0, twist dB, on ms, off ms)."""
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "tx.raw"
        script = "".join(f"{dg} {lv} {tw} {on} {off}\n" for dg, lv, tw, on, off in lines)
        subprocess.run([str(build()), "gen", str(out)], input=script, text=True,
                       check=True, capture_output=True, timeout=60)
        x = np.fromfile(out, dtype="<i2") if out.exists() else np.zeros(0, np.int16)
    assert x.size <= MAX_SAMPLES
    return x


def spandsp_decode(samples, parms: tuple[int, int, int] | None = None) -> list[tuple[str, int]]:
    """spandsp's dtmf_rx: [(digit, sample position when reported)]."""
    x = np.asarray(samples, dtype=np.int16)
    assert x.size <= MAX_SAMPLES
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "rx.raw"
        x.astype("<i2").tofile(src)
        args = [str(build()), "decode", str(src)] + [str(v) for v in (parms or ())]
        out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=120).stdout
    return [(ln.split()[0], int(ln.split()[1])) for ln in out.splitlines() if ln.strip()]


def spandsp_tone(f1: int, l1: int, f2: int, l2: int, on1: int, off1: int, on2: int, off2: int,
                 total_ms: int) -> np.ndarray:
    """spandsp's tone_gen with a cadence, ``total_ms`` long."""
    assert total_ms * 8 <= MAX_SAMPLES
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "tone.raw"
        subprocess.run([str(build()), "tone", str(out), *map(str, (f1, l1, f2, l2, on1, off1,
                        on2, off2, total_ms))], check=True, capture_output=True, timeout=60)
        return np.fromfile(out, dtype="<i2")


def spandsp_g711_tables() -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "g711.bin"
        subprocess.run([str(build()), "g711", str(out)], check=True, capture_output=True,
                       timeout=60)
        b = out.read_bytes()
    return {
        "ulaw_enc": np.frombuffer(b[:65536], np.uint8),
        "alaw_enc": np.frombuffer(b[65536:131072], np.uint8),
        "ulaw_dec": np.frombuffer(b[131072:131584], "<i2"),
        "alaw_dec": np.frombuffer(b[131584:132096], "<i2"),
    }


# ----------------------------------------------------------------- sweeps
def ours_decode(samples, spec: DtmfSpec = DtmfSpec()) -> list[tuple[str, int, int]]:
    return [(d.digit, d.start, d.end) for d in decode_dtmf(samples, spec)]


@dataclass
class Bursts:
    """A signal made of equal slots, one burst each, and what each slot should hold."""

    samples: np.ndarray
    slot: int                       # samples per slot
    expect: list[str]               # digit expected in each slot
    labels: list = field(default_factory=list)

    def credit_ours(self, found: list[tuple[str, int, int]]) -> list[list[str]]:
        """Digits our receiver put in each slot (by the middle of the digit)."""
        per = [[] for _ in self.expect]
        for d, s, e in found:
            k = ((s + e) // 2) // self.slot
            if 0 <= k < len(per):
                per[k].append(d)
        return per

    def credit_spandsp(self, found: list[tuple[str, int]]) -> list[list[str]]:
        """spandsp reports a digit after it ends: credit it to the slot it ended in."""
        per = [[] for _ in self.expect]
        for d, pos in found:
            k = (pos - 1) // self.slot
            if 0 <= k < len(per):
                per[k].append(d)
        return per

    def hits(self, per: list[list[str]]) -> np.ndarray:
        """True where a slot holds exactly its one expected digit."""
        return np.array([p == [e] for p, e in zip(per, self.expect)])


def munge(x: np.ndarray) -> np.ndarray:
    """What an INS-Net B-channel does to the audio (telephony.md §5)."""
    return ulaw_roundtrip(x)


def bursts(parts: list[np.ndarray], expect: list[str], slot_ms: float = 100.0,
           labels=None) -> Bursts:
    """Put each part at the start of its own slot (parts longer than a slot are cut)."""
    slot = int(slot_ms * RATE / 1000)
    out = np.zeros(slot * len(parts), dtype=np.int16)
    for i, p in enumerate(parts):
        p = np.asarray(p)[:slot]
        out[i * slot: i * slot + p.size] = p
    assert out.size <= MAX_SAMPLES
    return Bursts(out, slot, list(expect), list(labels or []))


def both(b: Bursts, spec: DtmfSpec = DtmfSpec(), parms=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-slot correct-detection flags of (ours, spandsp) on the same signal."""
    x = munge(b.samples)
    return (b.hits(b.credit_ours(ours_decode(x, spec))),
            b.hits(b.credit_spandsp(spandsp_decode(x, parms))))


# spandsp test 3: recognition bandwidth, 0.1 % steps to ±6 %
OFFSETS = np.round(np.arange(-60, 61) / 1000.0, 4)


def bandwidth_sweep(digit: str, group: str) -> tuple[Bursts, np.ndarray]:
    parts = []
    for off in OFFSETS:
        kw = {"offset_low": off} if group == "low" else {"offset_high": off}
        parts.append(gen.dtmf(digit, level=-17.0, on=50, off=50, **kw))
    return bursts(parts, [digit] * len(parts), labels=list(OFFSETS)), OFFSETS


def rrb_rcfo(hits: np.ndarray) -> tuple[float, float]:
    """spandsp's figures: RRB = (N+ + N-)/10 %, RCFO = (N+ - N-)/10 %."""
    n_plus = int(hits[OFFSETS > 0].sum())
    n_minus = int(hits[OFFSETS < 0].sum())
    return (n_plus + n_minus) / 10.0, (n_plus - n_minus) / 10.0


# spandsp test 4: twist, one tone at -3 dBm0, the other down to -23 in 0.1 dB steps
TWIST_STEPS = np.round(np.arange(0, 201) / 10.0, 1)


def twist_sweep(digit: str, louder: str) -> Bursts:
    """``louder`` = "low" (normal twist) or "high" (reverse twist)."""
    parts = []
    for t in TWIST_STEPS:
        if louder == "low":
            parts.append(gen.dtmf(digit, level=-3.0, twist=-t))
        else:
            parts.append(gen.dtmf(digit, level=-3.0 - t, twist=t))
    return bursts(parts, [digit] * len(parts), labels=list(TWIST_STEPS))


# spandsp test 5: dynamic range, both tones +3 … -50 dBm0 in 1 dB steps
LEVELS = np.arange(3, -51, -1)


def level_sweep(digit: str = "1") -> Bursts:
    return bursts([gen.dtmf(digit, level=float(lv)) for lv in LEVELS], [digit] * len(LEVELS),
                  labels=list(LEVELS))


def spandsp_level_sweep(digit: str = "1") -> Bursts:
    """The same sweep from spandsp's own generator."""
    x = spandsp_generate([(digit, int(lv), 0, 50, 50) for lv in LEVELS])
    return Bursts(x, 800, [digit] * len(LEVELS), list(LEVELS))


# spandsp test 7: S/N, digit 1 at -4 dBm0 per tone, white noise
def noise_bursts(noise_dbm0: float, count: int, seed: int = 1) -> Bursts:
    one = gen.dtmf("1", level=-4.0)
    x = np.tile(one, count).astype(np.float64)
    x += gen.noise(x.size, noise_dbm0, seed=seed)
    return Bursts(gen.saturate(x), one.size, ["1"] * count)


def all_pass_snr(snrs, count: int, seed: int = 1) -> tuple[float | None, float | None]:
    """Lowest S/N (per tone, dB) down to which every burst decodes at every step,
    stepping down from the highest: (ours, spandsp); None if even the highest fails."""
    floor: list[float | None] = [None, None]
    alive = [True, True]
    for snr in sorted(snrs, reverse=True):
        ours, sp = both(noise_bursts(-4.0 - snr, count, seed))
        for k, ok in enumerate((bool(ours.all()), bool(sp.all()))):
            if alive[k] and ok:
                floor[k] = snr
            alive[k] = alive[k] and ok
        if not any(alive):
            break
    return floor[0], floor[1]


def talk_off_hits(x: np.ndarray) -> tuple[int, int]:
    """False digits in speech: (ours, spandsp)."""
    x = munge(x)
    return len(ours_decode(x)), len(spandsp_decode(x))


# ----------------------------------------------------------------- speech
#: espeak-ng material for talk-off: (voice, words per minute, pitch, text)
ESPEAK = [
    ("ja", 150, 50, "こちらは松本市役所です。ただいまお客様との通話を録音しております。"
                    "ご用件をお話しください。住民票の写しの請求についてお尋ねですか。"),
    ("ja", 190, 70, "一二三四五六七八九十。明日の午前九時から午後五時までの間にお越しください。"),
    ("ja", 120, 30, "お電話ありがとうございます。担当の者におつなぎしますので、そのままお待ちください。"),
    ("en-us", 160, 50, "Thank you for calling the city office. Your call may be recorded. "
                       "Please say the number of the department you want, one two three four."),
    ("en", 140, 80, "Seven eight nine zero, star, hash. The quick brown fox jumps over the lazy dog."),
    ("de", 170, 40, "Guten Tag, hier ist das Rathaus. Bitte warten Sie, Sie werden verbunden."),
    ("fr", 150, 60, "Bonjour, vous êtes bien à la mairie. Veuillez patienter, s'il vous plaît."),
    ("zh", 140, 55, "您好，这里是市政府。请问有什么可以帮您？电话号码是一二三四五六七。"),
    ("ko", 150, 45, "안녕하세요, 시청입니다. 무엇을 도와드릴까요? 잠시만 기다려 주십시오."),
    ("es", 180, 65, "Buenos días, ayuntamiento de la ciudad. Un momento, por favor."),
]


@lru_cache(maxsize=1)
def espeak_corpus_cached(max_seconds: float = 300.0) -> np.ndarray:
    """The corpus, generated once per process into a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="espeak-") as d:
        x = espeak_corpus(Path(d), max_seconds)
    x.setflags(write=False)
    return x


def espeak_corpus(directory: Path, max_seconds: float = 300.0) -> np.ndarray:
    """All ESPEAK items at 8 kHz (each repeated with a sung-like high pitch), capped."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        raise RuntimeError("espeak-ng and sox are required (tools/bootstrap.sh test)")
    parts = []
    total = 0
    for i, (voice, wpm, pitch, text) in enumerate(ESPEAK):
        for j, p in enumerate((pitch, min(99, pitch + 40))):
            raw, out = directory / f"s{i}_{j}.wav", directory / f"s{i}_{j}_8k.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(p), "-w",
                            str(raw), text], check=True, capture_output=True, timeout=60)
            subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out)],
                           check=True, capture_output=True, timeout=60)
            import wave
            with wave.open(str(out)) as w:
                x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
            x = x[: int(max_seconds * RATE) - total]
            parts.append(x)
            total += x.size
            if total >= max_seconds * RATE:
                return np.concatenate(parts)
    return np.concatenate(parts)
