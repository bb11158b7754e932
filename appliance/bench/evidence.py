"""``appliance bench evidence``: what signing and day keys add to the capture pipeline.

The same pipeline as ``bench pipeline`` (``_rig.py``: simulator → line state
machines and detectors → Opus → Ogg → sealing → writer → catalog, file,
fdatasync), N two-leg calls, run twice in the same process and the same
temporary directory: once bare, once with the evidence of issue 14 — the
writer's capture statements (a running SHA-256 per file, one Merkle root a
second signed with an ECDSA P-256 device key file) and every data key
wrapped in its day's key held by a TPM (swtpm, started here and stopped by
its process id; skipped with a note when swtpm is not installed). Windows
alternate bare / evidence ``repeats`` times (ABBA order) and the best of each counts (on
a shared machine other load only adds time). CPU is the process's CPU
(every thread) plus its children's (tpm2-tools), minus the simulator's own
``read``. The figure that travels: the overhead in % of µs per call-frame.

A benchmark, not a test: it prints figures and asserts nothing. Bounded:
calls 1–192, seconds 1–60, repeats 1–5; everything under one temporary
directory, removed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from appliance.bench import _rig
from appliance.bench.pipeline import PERIODS_PER_S, _drain, _steps, _warm_up
from appliance.config import Config
from appliance.engine.notice import load_notice
from appliance.errors import ConfigError
from appliance.store.catalog import TOKYO
from appliance.store.daykeys import DayKeys
from appliance.store.devicekey import FileDeviceKey, fingerprint
from appliance.store.opus import EncoderSettings
from appliance.store.statements import CaptureSealer
from appliance.store.tpm import Tpm


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _window(rig: _rig.Rig, periods: int) -> float:
    _drain(rig)
    it = rig.iface
    c0, rc0 = _cpu(), it.read_cpu
    _steps(rig, periods)
    _drain(rig)
    return _cpu() - c0 - (it.read_cpu - rc0)


class _TimedSealer(CaptureSealer):
    """The product's sealer; adds up the writer-thread CPU of everything it does."""

    cpu = 0.0

    def _timed(self, fn, *a):
        t0 = time.thread_time()
        try:
            return fn(*a)
        finally:
            type(self).cpu += time.thread_time() - t0

    def wrote(self, call_id, rfile):
        return self._timed(super().wrote, call_id, rfile)

    def due(self):
        return self._timed(super().due)

    def seal(self):
        return self._timed(super().seal)


class _TimedSigner:
    """The device key, with the CPU its signatures take (thread time of the writer)."""

    def __init__(self, signer) -> None:
        self.signer, self.cpu, self.n = signer, 0.0, 0

    def sign(self, message: bytes) -> bytes:
        t0 = time.thread_time()
        sig = self.signer.sign(message)
        self.cpu += time.thread_time() - t0
        self.n += 1
        return sig


def _die_with_parent() -> None:
    """swtpm ends with the bench even if the bench is killed (Linux PR_SET_PDEATHSIG)."""
    import ctypes
    import signal
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGTERM))


class _SwTpm:
    """swtpm on two free loopback ports, stopped by its own pid (None if not installed)."""

    def __init__(self, d: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        (d / "state").mkdir(parents=True)
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={d.resolve() / 'state'}",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.tpm = Tpm(f"swtpm:host=127.0.0.1,port={self.port}")
        deadline = time.monotonic() + 20
        while True:
            try:
                self.tpm.ping()
                break
            except Exception:                 # noqa: BLE001 — not up yet; bounded below
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise ConfigError("swtpm did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def run(calls: int = 16, seconds: float = 10.0, repeats: int = 3) -> dict:
    settings = EncoderSettings()
    config = Config()
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-evidence-"))
    swtpm = None
    try:
        warm_s = 2.1 + _rig.ANSWER_AFTER_S + 1.0 + load_notice(config.notice).seconds
        total_s = warm_s + repeats * seconds + 3.0
        far, near = _rig.talk_legs(total_s)
        _rig.write_wav(tmp / "far.wav", far)
        _rig.write_wav(tmp / "near.wav", near)
        scen = _rig.scenario(calls, tmp / "far.wav", tmp / "near.wav", total_s)
        queue = min(100_000, int(calls * total_s / 0.8) + 64)
        bare_dd = _rig.make_datadir(tmp / "bare")
        ev_dd = _rig.make_datadir(tmp / "evidence")
        signer = FileDeviceKey.create(tmp / "device-key.pem", ev_dd.root)
        device_fp = fingerprint(signer.public_pem())
        day_keys = None
        if shutil.which("swtpm") and shutil.which("tpm2_nvread"):
            swtpm = _SwTpm(tmp / "swtpm")
            DayKeys(swtpm.tpm).provision(_rig.EPOCH.astimezone(TOKYO).date())
            ev_dd.keys.set_tpm(swtpm.tpm.tcti)
            day_keys = "swtpm"
        keys_cpu = [0.0]
        plain_store = ev_dd.keys.store_data_key

        def timed_store(key_id, sealed, day):     # the day-key wrap, with its file write
            t0 = time.thread_time()
            try:
                return plain_store(key_id, sealed, day)
            finally:
                keys_cpu[0] += time.thread_time() - t0
        ev_dd.keys.store_data_key = timed_store
        sealers: list[CaptureSealer] = []
        timed = _TimedSigner(signer)

        def make_sealer(catalog, clock):
            # paced in line time: one statement per second of audio, as on a line in real
            # time (the bench runs faster than real time)
            s = _TimedSealer(catalog, timed, device_fp, lambda: clock.now().timestamp(),
                             clock.now)
            sealers.append(s)
            return s

        rigs = {"bare": _rig.build(bare_dd, config, settings, scen, queue),
                "evidence": _rig.build(ev_dd, config, settings, scen, queue,
                                       make_sealer=make_sealer)}
        periods = int(seconds * PERIODS_PER_S)
        windows: dict[str, list[float]] = {"bare": [], "evidence": []}
        try:
            for rig in rigs.values():
                _warm_up(rig, calls)
            before = sum(s.statements for s in sealers)
            sealer_cpu0, children0 = _TimedSealer.cpu, os.times().children_user
            keys_cpu0 = keys_cpu[0]
            for i in range(repeats):          # alternating, ABBA: both see the same load
                order = list(rigs.items()) if i % 2 == 0 else list(rigs.items())[::-1]
                for name, rig in order:
                    windows[name].append(_window(rig, periods))
            in_windows = sum(s.statements for s in sealers) - before
            # what the evidence itself cost, measured where it runs (the writer thread, and
            # tpm2-tools as children): precise where the A/B difference is lost in the noise
            attributed = ((_TimedSealer.cpu - sealer_cpu0) + (keys_cpu[0] - keys_cpu0)
                          + (os.times().children_user - children0))
        finally:
            for rig in rigs.values():
                rig.close()
        us = {k: 1e6 * min(v) / (calls * periods) for k, v in windows.items()}
        attributed_us = 1e6 * attributed / (calls * periods * repeats)
        statements = sum(s.statements for s in sealers)
        median = {k: sorted(v)[len(v) // 2] for k, v in windows.items()}
        return {"calls": calls, "audio_s_per_window": seconds, "repeats": repeats,
                "us_per_call_frame_bare": us["bare"],
                "us_per_call_frame_evidence": us["evidence"],
                "overhead_pct": 100.0 * (us["evidence"] - us["bare"]) / us["bare"],
                "windows_us_bare": [1e6 * w / (calls * periods) for w in windows["bare"]],
                "windows_us_evidence": [1e6 * w / (calls * periods) for w in windows["evidence"]],
                "statements": statements,
                "overhead_pct_median": 100.0 * (median["evidence"] - median["bare"]) / median["bare"],
                "attributed_us_per_call_frame": attributed_us,
                "attributed_pct": 100.0 * attributed_us / (1e6 * median["bare"]
                                                           / (calls * periods)),
                "statements_per_audio_s": in_windows / (repeats * seconds),
                "sign_cpu_ms_per_statement": 1e3 * timed.cpu / max(1, timed.n),
                "device_key": "file (ECDSA P-256)", "day_keys": day_keys or "not measured"}
    finally:
        if swtpm is not None:
            swtpm.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def cmd(args) -> int:
    if not 1 <= args.calls <= 192 or not 1 <= args.seconds <= 60 or not 1 <= args.repeats <= 5:
        raise ConfigError("--calls 1〜192, --seconds 1〜60, --repeats 1〜5")
    r = run(args.calls, args.seconds, args.repeats)
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
        return 0
    print(f"証跡の費用 / evidence cost at {r['calls']} calls (best of {r['repeats']} windows of "
          f"{r['audio_s_per_window']:.0f} s, alternating):")
    print(f"  bare     {r['us_per_call_frame_bare']:8.1f} µs per call-frame")
    print(f"  evidence {r['us_per_call_frame_evidence']:8.1f} µs per call-frame "
          f"(signing: {r['statements']} statements, {r['sign_cpu_ms_per_statement']:.2f} ms CPU "
          f"each to sign; "
          f"day keys: {r['day_keys']})")
    print(f"  A/B      {r['overhead_pct']:+.1f} % (best windows), {r['overhead_pct_median']:+.1f} % "
          f"(median windows); {r['statements_per_audio_s']:.2f} statements per audio second")
    print(f"  measured where it runs: {r['attributed_us_per_call_frame']:.2f} µs per call-frame = "
          f"{r['attributed_pct']:.2f} % of the bare pipeline")
    return 0


def register(bench_sub) -> None:
    p = bench_sub.add_parser(
        "evidence", help="署名と日鍵の費用 / what device signing and TPM day keys add to the "
                         "capture pipeline's CPU per call-frame, measured in the same run")
    p.add_argument("--calls", type=int, default=16, help="simultaneous calls (default %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0,
                   help="talk audio per window (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="windows each (default %(default)s)")
    p.add_argument("--json", action="store_true", help="JSON で出力 / print one JSON object")
    p.set_defaults(func=cmd)
