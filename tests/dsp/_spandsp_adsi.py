"""Bridge to libspandsp's caller-ID transmitter and receiver, for the tests.

Compiles ``tests/dsp/spandsp_adsi.c`` (ours) against Debian's libspandsp into
``tests/.build/`` once per source change, and wraps its two commands. Also
holds the impairments (noise, level, offset) the sweeps use, so the numbers
in docs/dsp.md come from the same code: ``python tests/dsp/_spandsp_adsi.py``
prints the tables.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from _spandsp_build import SpandspUnavailable, build as _build  # noqa: F401

from appliance.cli.wavio import read_line_wav, write_line_wav
from appliance.dsp.callerid import decode_caller_id, encode_caller_id
from appliance.dsp.fsk import dbm0_to_amplitude

HERE = Path(__file__).resolve().parent
#: every file the bridge reads or writes stays below this many samples (10 s)
MAX_SAMPLES = 80_000

NUMBER = "0263345000"
CALLED = "0263345001"


def build() -> Path:
    """Compile the helper if it is missing or older than its source; return its path."""
    return _build("spandsp_adsi")


def spandsp_generate(standard: str, path: Path, level_dbm0: float, *, number=None,
                     absent=None, called=None, sdmf=False, lead_ms=200) -> np.ndarray:
    """spandsp's adsi_tx signal written to ``path``; returns its samples."""
    args = [str(build()), "gen", standard, str(path), f"{level_dbm0:g}", f"lead_ms={lead_ms}"]
    for key, value in (("number", number), ("absent", absent), ("called", called)):
        if value is not None:
            args.append(f"{key}={value}")
    if sdmf:
        args.append("sdmf=1")
    subprocess.run(args, check=True, capture_output=True, timeout=30)
    x = read_line_wav(path)
    assert x.size <= MAX_SAMPLES
    return x


def spandsp_decode(standard: str, path: Path) -> list[dict]:
    """Messages spandsp's adsi_rx finds in a WAV file, as number/absent/called dicts."""
    out = subprocess.run([str(build()), "dec", standard, str(path)], check=True,
                         capture_output=True, text=True, timeout=30).stdout
    found = []
    for line in out.splitlines()[:100]:
        raw = json.loads(line)
        fields = {}
        for ftype, hexbody in raw["fields"]:
            fields.setdefault(ftype, bytes.fromhex(hexbody).decode("latin-1"))
        msg = {"type": raw["type"], "number": None, "absent_code": None, "called_number": None}
        if raw["type"] == 0x04 and 0 in fields:          # Bellcore SDMF: date then number
            tail = fields[0][8:]
            msg["absent_code" if tail in ("O", "P") else "number"] = tail
        else:
            msg["number"] = fields.get(0x02)
            msg["absent_code"] = fields.get(0x04)
            msg["called_number"] = fields.get(0x09 if standard == "jclip" else 0x03)
        found.append(msg)
    return found


def spandsp_decode_samples(standard: str, samples, workdir: Path) -> list[dict]:
    path = Path(workdir) / "to_spandsp.wav"
    write_line_wav(path, np.clip(np.rint(samples), -32768, 32767))
    return spandsp_decode(standard, path)


# -- impairments shared by the sweeps -----------------------------------------------
def with_silence(x, lead_s=0.2, tail_s=0.2) -> np.ndarray:
    return np.concatenate((np.zeros(int(lead_s * 8000)), np.asarray(x, float),
                           np.zeros(int(tail_s * 8000))))


def add_noise(x, snr_db: float, signal_level_dbm0: float, seed: int) -> np.ndarray:
    """White noise over the whole file, ``snr_db`` below the FSK's power."""
    sig_rms = dbm0_to_amplitude(signal_level_dbm0) / np.sqrt(2)
    noise = np.random.default_rng(seed).normal(0.0, sig_rms * 10 ** (-snr_db / 20), len(x))
    return np.clip(np.asarray(x, float) + noise, -32768, 32767)


def ours_ok(samples, standard: str, number=NUMBER) -> bool:
    """Did our receiver (in auto mode) report exactly the right message and nothing else?"""
    got = decode_caller_id(samples)
    return (len(got) == 1 and got[0].checksum_ok and got[0].number == number
            and str(got[0].standard) == standard)


def spandsp_ok(samples, standard: str, workdir: Path, number=NUMBER) -> bool:
    got = spandsp_decode_samples(standard, samples, workdir)
    return len(got) == 1 and got[0]["number"] == number


def impaired(standard: str, *, level=-14.0, snr=None, offset=0.0, seed=0) -> np.ndarray:
    x = with_silence(encode_caller_id(standard, NUMBER, level_dbm0=level, freq_offset=offset))
    return x if snr is None else add_noise(x, snr, level, seed)


def sweep_tables(workdir: Path, trials: int = 10) -> str:
    """Markdown tables: share of messages decoded, ours and spandsp's, on the same signals."""
    rows = {"level (dBm0)": [("level", v) for v in (-50, -45, -40, -35, -30, -25, -14, -6, 0)],
            "SNR (dB), FSK at −14 dBm0": [("snr", v) for v in (20, 15, 12, 10, 8, 6, 4)],
            "frequency offset (%)": [("offset", v) for v in (-5, -4, -3, -1.5, 1.5, 3, 4, 5)]}
    lines = []
    for title, points in rows.items():
        lines += [f"| {title} | JCLIP ours | JCLIP spandsp | Bellcore ours | Bellcore spandsp"
                  " | ETSI ours | ETSI spandsp |", "|---|---|---|---|---|---|---|"]
        for kind, v in points:
            cells = [f"{v:g}"]
            for std in ("jclip", "bellcore", "etsi"):
                o = s = 0
                n = trials if kind == "snr" else 1
                for seed in range(n):
                    kw = {"level": v} if kind == "level" else (
                        {"snr": v, "seed": seed} if kind == "snr" else {"offset": v / 100})
                    x = impaired(std, **kw)
                    o += ours_ok(x, std)
                    s += spandsp_ok(x, std, workdir)
                cells += [f"{o}/{n}", f"{s}/{n}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":   # prints the docs/dsp.md tables
    with tempfile.TemporaryDirectory() as d:
        print(sweep_tables(Path(d)))
