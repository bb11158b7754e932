"""A built-in synthetic two-leg call for ``appliance run`` until the simulator lands.

Vowel-like voiced sound (harmonics of a pitch, shaped by a syllable-rate
envelope) in alternating talk turns: the far party speaks, then the staff
side answers. Deterministic for a given seed; frames are generated on
demand so a long call costs no memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from appliance.units import FRAME_SAMPLES, LINE_RATE


def _voice(t: np.ndarray, pitch: float, rng_phase: float) -> np.ndarray:
    out = np.zeros_like(t)
    for k, amp in enumerate((1.0, 0.6, 0.45, 0.3, 0.2, 0.12), start=1):
        out += amp * np.sin(2 * np.pi * pitch * k * t + rng_phase * k)
    syllables = 0.5 * (1 + np.sin(2 * np.pi * 4.0 * t)) ** 2 / 2
    return out * syllables


def two_leg_frames(seconds: float, seed: int = 1, turn_s: float = 2.5,
                   level: float = 6000.0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (far, near) int16 frames of 20 ms for ``seconds`` of conversation."""
    rng = np.random.default_rng(seed)
    far_pitch, near_pitch = 110 + 20 * rng.random(), 200 + 40 * rng.random()
    phase = rng.random() * 2 * np.pi
    n_frames = int(round(seconds * LINE_RATE / FRAME_SAMPLES))
    for i in range(n_frames):
        t = (i * FRAME_SAMPLES + np.arange(FRAME_SAMPLES)) / LINE_RATE
        far_turn = (t // turn_s) % 2 == 0
        far = np.where(far_turn, _voice(t, far_pitch, phase), 0.0)
        near = np.where(~far_turn, _voice(t, near_pitch, phase + 1), 0.0)
        noise = rng.normal(0, 30, (2, FRAME_SAMPLES))   # line noise floor
        yield ((level * far / 2.7 + noise[0]).astype(np.int16),
               (level * near / 2.7 + noise[1]).astype(np.int16))
