"""The test rig of ``appliance bench pipeline``: N simulated calls through the real engine.

What runs is the product's own path — ``SimInterface`` → ``Engine`` (line
state machines and their detectors) → ``CallRecorder`` (Opus, Ogg, sealing)
→ ``ThreadedSink`` → ``Writer`` (sealed key, catalog row, file, fdatasync).
The rig only wraps it to look:

* :class:`TimedInterface` measures the simulator's own ``read`` (CPU and
  wall time, subtracted: the simulator stands in for hardware and is not the
  pipeline), optionally paces reads to real time, and timestamps ``play``;
* :class:`StampingWriter` timestamps each sealed chunk after it is durable.

Talk audio comes from two WAV files shared by every call (``wav:`` in the
scenario): the simulator's ``speech`` source caches half a megabyte per call
and leg, which would swamp the memory figure with the simulator's own buffers.
"""

from __future__ import annotations

import os
import time
import wave
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from appliance.clock import FakeClock
from appliance.config import Config
from appliance.dsp import gen
from appliance.engine.capture import Engine
from appliance.engine.line import State
from appliance.engine.notice import load_notice
from appliance.engine.recorder import CallRecorder
from appliance.engine.writer import AppendJob, OpenJob, ThreadedSink, Writer
from appliance.store.catalog import from_utc_text
from appliance.store.datadir import DataDir
from appliance.store.opus import EncoderSettings
from appliance.store.sealed import FRAME, MAGIC
from appliance.tapi.sim import SimInterface
from appliance.tapi.sim.scenario import parse_scenario
from appliance.units import FRAME_SAMPLES, LINE_RATE

EPOCH = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
TURN_S = 3.0
#: an incoming call with rings = 0 is answered about 3 s after its first CAR burst
ANSWER_AFTER_S = 3.5


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def talk_legs(seconds: float, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Speech-like audio with turns (far first), as the simulator's own talk."""
    x = gen.speech_like(seconds, seed=seed)
    y = gen.speech_like(seconds, seed=seed + 1)
    turn = (np.arange(x.size) // int(TURN_S * LINE_RATE)) % 2 == 0
    return np.where(turn, x, 0).astype(np.int16), np.where(turn, 0, y).astype(np.int16)


def write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(LINE_RATE)
        w.writeframes(x.astype("<i2").tobytes())


def make_datadir(root: Path) -> DataDir:
    """A data directory with a fresh archive key and catalog (no staff: none is needed)."""
    dd = DataDir(root)
    root.mkdir(parents=True, exist_ok=True)
    dd.keys.create_archive()
    dd.open_catalog(EPOCH, create=True).close()
    return dd


class TimedInterface:
    """Delegates to the simulator; keeps its cost apart and can pace it to real time."""

    def __init__(self, sim: SimInterface) -> None:
        self.sim = sim
        self.epoch = sim.epoch
        self.read_cpu = 0.0
        self.read_wall = 0.0
        self.pace_from: float | None = None     # wall time of the first paced period
        self.pace_sample = 0
        self.last_read_done = 0.0
        self.read_done: dict[int, float] = {}   # period sample → wall time (paced periods)
        self.play_wall: list[float] = []        # read of the answer's period → play(), s

    def lines(self):
        return self.sim.lines()

    @property
    def sample(self) -> int:
        return self.sim.sample

    def pace(self) -> None:
        self.pace_from, self.pace_sample = time.perf_counter(), self.sim.sample

    def read(self):
        if self.pace_from is not None:
            due = self.pace_from + (self.sim.sample + FRAME_SAMPLES - self.pace_sample) / LINE_RATE
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        c0, w0 = time.thread_time(), time.perf_counter()
        period = self.sim.read()
        w1 = time.perf_counter()
        self.read_cpu += time.thread_time() - c0
        self.read_wall += w1 - w0
        self.last_read_done = w1
        if self.pace_from is not None and period is not None:
            self.read_done[period.sample] = w1
        return period

    def play(self, trunk, channel, samples):
        start = self.sim.play(trunk, channel, samples)
        self.play_wall.append(time.perf_counter() - self.last_read_done)
        return start

    def stop_play(self, trunk, channel):
        self.sim.stop_play(trunk, channel)

    def set_loop(self, trunk, channel, closed):
        self.sim.set_loop(trunk, channel, closed)

    def close(self):
        self.sim.close()


class StampingWriter(Writer):
    """The product's writer; notes when each sealed chunk is on disk, and which audio it holds."""

    def __init__(self, datadir: DataDir, catalog, sealer=None) -> None:
        super().__init__(datadir, catalog, sealer=sealer)
        self.start_sample: dict[str, int] = {}
        self.durable: list[tuple[str, int, float]] = []   # (call id, samples_end, wall time)

    def _do(self, job) -> None:
        super()._do(job)
        if isinstance(job, OpenJob):
            started = from_utc_text(job.row["started_at"])
            self.start_sample[job.call_id] = round((started - EPOCH).total_seconds() * LINE_RATE)
        elif isinstance(job, AppendJob) and not job.data.startswith(MAGIC):
            _, samples_end, _ = FRAME.unpack_from(job.data, 0)
            self.durable.append((job.call_id, samples_end, time.perf_counter()))


def scenario(calls: int, wav_far: Path, wav_near: Path, talk_s: float,
             late: int = 0, late_from: float = 0.0, late_span: float = 1.0):
    """``calls`` incoming calls on as many trunks; the last ``late`` arrive from ``late_from``."""
    early = calls - late
    trunks, rows = [], []
    for i in range(calls):
        if i < early:
            at = 0.1 + 2.0 * i / max(early, 1)
        else:
            at = late_from + late_span * (i - early) / max(late, 1)
        trunks.append({"id": f"B{i:03d}"})
        rows.append({"trunk": f"B{i:03d}", "at": round(at, 3), "direction": "in",
                     "far_number": f"0263{i:06d}", "rings": 0, "talk": talk_s, "hangup": "near",
                     "far_audio": f"wav:{wav_far}", "near_audio": f"wav:{wav_near}"})
    return parse_scenario({"trunk": trunks, "call": rows, "scenario": {"tail": 0.5}},
                          Path("<bench>"))


@dataclass
class Rig:
    engine: Engine
    iface: TimedInterface
    sink: ThreadedSink
    writer: StampingWriter
    catalog: object
    notices: list[float] = field(default_factory=list)

    def talking(self) -> int:
        return sum(1 for ln in self.engine.lines if ln.state is State.TALK)

    def close(self) -> None:
        self.engine.finish()
        self.sink.close()
        self.catalog.close()


def build(dd: DataDir, config: Config, settings: EncoderSettings, scen, queue_chunks: int,
          make_recorder=CallRecorder, make_sealer=None) -> Rig:
    """``make_sealer(catalog, clock)``: the writer's capture-statement signer (bench evidence)."""
    clock = FakeClock(EPOCH)
    catalog = dd.open_catalog(clock.now())
    iface = TimedInterface(SimInterface(scen, clock))
    writer = StampingWriter(dd, catalog,
                            make_sealer(catalog, clock) if make_sealer is not None else None)
    sink = ThreadedSink(writer, queue_chunks, wait_when_full=True)
    recorder = make_recorder(dd, catalog, config.site.name, settings, sink)
    engine = Engine(iface, recorder, config, load_notice(config.notice), lambda report: None)
    return Rig(engine, iface, sink, writer, catalog)
