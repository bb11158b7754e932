"""``appliance run``: the appliance's main job — capture every line and record its calls."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from appliance.clock import FakeClock, SystemClock
from appliance.config import load_config
from appliance.errors import ApplianceError, ConfigError
from appliance.store.catalog import TOKYO
from appliance.store.datadir import DataDir

NOTICE_JA = {"played": "案内済", "not_heard": "案内未確認", "none": "案内なし"}


def demo_scenario(seconds: float):
    """A built-in scenario of one incoming call with caller ID and ``seconds`` of talk."""
    from appliance.tapi.sim.scenario import parse_scenario
    if not 0.5 <= seconds <= 4 * 3600:
        raise ConfigError("--demo-seconds must be within 0.5…14400")
    return parse_scenario({
        "trunk": [{"id": "T1"}],
        "call": [{"trunk": "T1", "at": 0.2, "direction": "in", "far_number": "0263345000",
                  "rings": 0, "talk": seconds, "hangup": "near"}],
        "scenario": {"tail": 0.5},
    }, Path("<demo>"))


def _printer(report) -> None:
    from appliance.engine.reports import Alarm, CallEnded, CallStarted, NotRecorded
    if isinstance(report, CallStarted):
        way = "着信 in" if report.direction == "in" else "発信 out"
        print(f"録音開始 / recording {report.call_id}: {report.trunk}/{report.channel} {way} "
              f"{report.at.astimezone(TOKYO):%H:%M:%S}", flush=True)
    elif isinstance(report, CallEnded):
        dur = "-" if report.duration_s is None else f"{report.duration_s:.1f} s"
        print(f"録音終了 / recorded {report.call_id}: 通話 {dur}, 録音 {report.recorded_s:.1f} s, "
              f"{NOTICE_JA.get(report.notice, report.notice)} / notice {report.notice}", flush=True)
    elif isinstance(report, NotRecorded):
        what = ("不応答 / unanswered (記録のみ / logged without audio)" if report.why == "unanswered"
                else "除外回線 / excluded (録音なし / not recorded)")
        print(f"{what}: {report.trunk}/{report.channel}", flush=True)
    elif isinstance(report, Alarm):
        print(f"警報 / ALARM {report.what}: {report.count} {report.detail}", flush=True)


def _stop_on_sigterm(signum, frame) -> None:
    # systemd stops the recorder with SIGTERM: close the calls in progress, as on Ctrl-C
    raise KeyboardInterrupt


def _run_quietly(argv):
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)


@dataclass
class Operations:
    notifier: object
    watchdog: object | None
    monitor: object
    server: object | None
    led: object
    deliverer: object | None = None
    power: object | None = None

    def ready(self) -> None:
        self.notifier.ready("録音中 / recording")

    def close(self) -> None:
        if self.power is not None:
            self.power.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        self.monitor.stop()
        try:
            self.monitor.check()     # the state the recorder leaves behind
        except Exception:            # noqa: BLE001 — shutting down: log and go on
            logging.getLogger(__name__).exception("final alarm check failed")
        if self.server is not None:
            self.server.close()
        if self.deliverer is not None:
            try:
                self.deliverer.run_once()     # what the last check raised, while we hold the lease
            except Exception:                 # noqa: BLE001 — the web service's deliverer goes on
                logging.getLogger(__name__).exception("final alarm delivery failed")
            self.deliverer.stop()
        self.led.close()


def status_panel(iface):
    """The front panel (LEDs, button) of the single-line GPIO variant; None for other backends."""
    from appliance.tapi.gpio import GpioInterface, StatusPanel
    if not isinstance(iface, GpioInterface):
        return None
    try:
        return StatusPanel()
    except Exception as exc:         # noqa: BLE001 — no panel: the recorder still records
        logging.getLogger(__name__).error("status panel unavailable: %s", exc)
        return None


def start_operations(dd, config, engine, recorder, reporter, alarm_catalog, clock,
                     fault_led=None, delivery_catalog=None, fast: bool = False) -> Operations:
    """Live status socket, alarm monitor, fault LED and systemd watchdog around the engine.

    ``fault_led`` (the GPIO panel's) replaces ``[alarms] fault_led_pin`` when given."""
    from appliance.governance.retention import RetentionPolicy
    from appliance.ops.alarms import AlarmCode, AlarmRegistry
    from appliance.ops.delivery import start_deliverer
    from appliance.ops.leds import GpioFaultLed, NullLed
    from appliance.ops.live import LiveServer, LiveState, socket_path
    from appliance.ops.monitor import AlarmSettings, Monitor, free_bytes_of, ntp_synchronised
    from appliance.ops.power import PowerMonitor, PowerSettings, read_ups
    from appliance.ops.activity import ActivityWatch, trunk_rules
    from appliance.ops.calendar import CityCalendar
    from appliance.ops.timekeeping import ClockSettings, ClockWatch, read_tracking
    from appliance.store.catalog import from_utc_text
    from appliance.ops.watchdog import CaptureWatchdog, Notifier, watchdog_interval

    log = logging.getLogger(__name__)
    settings = AlarmSettings.from_config(config.raw.get("alarms"))
    policy = RetentionPolicy.from_config(config.raw.get("retention"))
    led = fault_led or NullLed()
    if fault_led is None and settings.fault_led_pin is not None:
        try:
            led = GpioFaultLed(settings.fault_led_pin)
        except Exception as exc:     # noqa: BLE001 — no GPIO here: alarms still reach the journal
            log.error("fault LED on pin %s unavailable: %s", settings.fault_led_pin, exc)
    registry = AlarmRegistry(alarm_catalog, clock.now, led, actor="recorder")
    registry.clear(AlarmCode.RECORDER_NOT_ANSWERING)       # it answers: it is starting
    live = LiveState(engine, engine.notice.samples)
    engine.observers.append(live)
    clock_settings = ClockSettings.from_config(config.raw.get("clock"))
    clock_watch = ClockWatch(registry, clock_settings,
                             lambda: read_tracking(clock_settings, _run_quietly), clock.now,
                             clock.monotonic, recorder)
    rules = trunk_rules(config.raw.get("alarms"))
    activity = None
    if rules:
        last = {r[0]: from_utc_text(r[1]) for r in alarm_catalog.conn.execute(
            "SELECT trunk, MAX(offered_at) FROM calls GROUP BY trunk")}
        activity = ActivityWatch(registry, CityCalendar.from_config(config.raw.get("calendar")),
                                 rules, clock.now, last)
        reporter.listeners.append(activity.on_report)
    monitor = Monitor(registry, live, settings=settings, min_free_mb=policy.min_free_mb,
                      free_bytes=free_bytes_of(dd.root),
                      ntp=lambda: ntp_synchronised(_run_quietly), recorder=recorder,
                      clock_watch=clock_watch, activity=activity)
    reporter.listeners.append(monitor.on_report)
    notifier = Notifier(os.environ.get("NOTIFY_SOCKET"))
    try:
        server = LiveServer(live, socket_path(dd.root),
                            extra=lambda: {"ntp_synchronised": monitor.ntp_state})
    except (OSError, ApplianceError) as exc:
        log.error("live status socket unavailable: %s", exc)
        server = None
    monitor.start()
    # its own connection: the deliverer's thread commits cursors beside the monitor's raises
    deliverer = start_deliverer(
        delivery_catalog, config.raw.get("alarms"), _config_dir(config), now=SystemClock().now,
        monotonic=SystemClock().monotonic, site=config.site.name, host=socket.gethostname(),
        registry=registry, alarm_after_s=settings.delivery_alarm_s)
    interval = watchdog_interval(os.environ)
    watchdog = None
    if interval is None and not fast and settings.capture_stall_s:
        interval = settings.capture_stall_s / 2     # no systemd: still watch for a hung loop
    if interval is not None:
        watchdog = CaptureWatchdog(
            notifier, lambda: engine.stats.periods, interval,
            on_stall=lambda: registry.raise_(AlarmCode.CAPTURE_STALLED, "",
                                             "取込みループが停止 / capture loop made no progress"),
            on_resume=lambda: registry.clear(AlarmCode.CAPTURE_STALLED)).start()
    power = None
    power_settings = PowerSettings.from_config(config.raw.get("power"))
    if power_settings is not None:
        power = PowerMonitor(
            registry, alarm_catalog, power_settings,
            lambda: read_ups(power_settings, _run_quietly), clock.now, SystemClock().monotonic,
            # the same path as systemd's stop: the main thread closes every call
            request_stop=lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    return Operations(notifier, watchdog, monitor, server, led, deliverer, power)


def power_off(ops: Operations, catalog, now) -> None:
    """After a low-battery stop (every call closed): the configured shutdown command."""
    from appliance.governance.ledger import EntryKind, Ledger
    cmd = list(ops.power.settings.shutdown_command)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        result = r.returncode
    except (OSError, subprocess.SubprocessError) as exc:
        result = f"{type(exc).__name__}"
    Ledger(catalog).append(EntryKind.POWER, now, actor="recorder",
                           detail={"event": "shutdown_command", "command": cmd,
                                   "result": result})
    print(f"停電: 全通話を閉じ停止処理を実行 / low battery: calls closed, shutdown command run "
          f"({result})", flush=True)


def _config_dir(config) -> Path:
    return config.source.parent if config.source is not None else Path.cwd()


def open_outbox(dd: DataDir):
    """The outbox of an enrolled appliance (wall-clock times even under --fast), else None."""
    from appliance.replication import Outbox
    from appliance.replication.link import load_link
    if load_link(dd.root) is None:
        return None
    return Outbox.open(dd.root, SystemClock().now)


def raise_evidence_alarms(alarm_catalog, clock, key_problem, evidence_alarms) -> None:
    """A swapped archive key or an unsigned capture: alarms a person must act on."""
    from appliance.ops.alarms import AlarmCode, AlarmRegistry
    registry = AlarmRegistry(alarm_catalog, clock.now)
    if key_problem:
        registry.raise_(AlarmCode.ARCHIVE_KEY_MISMATCH, "", key_problem)
        print(f"警報 / ALARM {key_problem}", file=sys.stderr, flush=True)
    else:
        registry.clear(AlarmCode.ARCHIVE_KEY_MISMATCH)
    for text in evidence_alarms:
        registry.raise_(AlarmCode.EVIDENCE_UNSIGNED, "", text)
        print(f"警報 / ALARM {text}", file=sys.stderr, flush=True)


def cmd_run(args) -> int:
    from appliance.engine.capture import Engine
    from appliance.engine.notice import load_notice
    from appliance.engine.recorder import CallRecorder, recover_interrupted
    from appliance.engine.reports import Reporter
    from appliance.engine.writer import ThreadedSink, Writer
    from appliance.ops.evidence import (NO_TPM_JA, EvidenceSettings, Timestamping,
                                        capture_sealer)
    from appliance.tapi import open_interface
    from appliance.tapi.sim import SimInterface

    dd = DataDir(args.data_dir)
    dd.require()
    config = load_config(args.config)
    notice = load_notice(config.notice)
    # --fast runs on simulated time: the calls' times and durations stay true to their audio
    clock = FakeClock(SystemClock().now()) if args.fast else SystemClock()
    if args.demo_seconds is not None:
        iface = SimInterface(demo_scenario(args.demo_seconds), clock)
    else:
        url = args.interface or config.interface.url
        if not url:
            raise ConfigError("回線インタフェースが設定されていません / no line interface: set "
                              "[interface] url in the configuration or give --interface")
        base = Path.cwd() if args.interface or config.source is None else config.source.parent
        iface = open_interface(url, clock, base)
    catalog = dd.open_catalog(clock.now())
    alarm_catalog = dd.open_catalog(clock.now())    # its own connection: other threads use it
    outbox = open_outbox(dd)
    delivery_catalog = dd.open_catalog(clock.now())
    # the recorder lock: verify knows a recorder runs (rows 'recording' are not stale)
    with dd.recorder_lock(), catalog, alarm_catalog, delivery_catalog, iface, \
            outbox or contextlib.nullcontext():
        for cid in recover_interrupted(dd, catalog, clock.now()):
            print(f"中断された録音を閉じました / closed interrupted recording {cid} as truncated",
                  flush=True)
        from appliance.ops.power import note_power_return
        gap = note_power_return(catalog, clock.now())
        if gap is not None:
            print(f"復電: 停電による停止から再開 / power back: resumed after {gap['seconds']:.0f} s "
                  "without recording (記録済み / in the completeness report)", flush=True)
        if outbox is not None:
            # bytes a power cut kept out of the outbox are queued before anything new
            outbox.reconcile(catalog, dd.path_of)
        settings = EvidenceSettings.from_config(config)
        sealer, evidence_alarms = capture_sealer(settings, dd, catalog, time.monotonic, clock.now)
        if settings.tcti is None:
            print(NO_TPM_JA, file=sys.stderr, flush=True)
        writer = Writer(dd, catalog, outbox=outbox, sealer=sealer)
        sink = ThreadedSink(writer, config.engine.writer_queue_chunks, wait_when_full=args.fast)
        reporter = Reporter([_printer])
        recorder = CallRecorder(dd, catalog, config.site.name, config.encoder, sink)
        engine = Engine(iface, recorder, config, notice, reporter)
        panel = status_panel(iface)       # gpio://: recording LED per call, fault LED per alarm
        if panel is not None:
            reporter.listeners.append(panel)
        # before the monitor thread starts using alarm_catalog: one connection, one thread
        raise_evidence_alarms(alarm_catalog, clock, recorder.key_problem, evidence_alarms)
        ops = start_operations(dd, config, engine, recorder, reporter, alarm_catalog, clock,
                               fault_led=panel.fault_led() if panel is not None else None,
                               delivery_catalog=delivery_catalog, fast=args.fast)
        # the ledger's head to the TSA every [timestamp] interval_minutes (and at stop)
        stamping = Timestamping(settings, dd, clock.now).start()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm) if main else None
        try:
            ops.ready()
            engine.run()
        except KeyboardInterrupt:
            print("停止 / stopping: closing calls in progress", file=sys.stderr, flush=True)
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)
            ops.notifier.stopping()
            engine.finish()
            sink.close()
            stamping.stop()
            reporter.close()
            ops.close()
            if panel is not None:
                panel.close()
        if ops.power is not None and ops.power.shutdown_requested:
            power_off(ops, catalog, clock.now())
        st = engine.stats
        print(f"終了 / done: {st.periods * 0.02:.1f} s of line time, {st.lost_frames} frames lost, "
              f"{st.bad_periods} bad periods, {sum(st.problems.values())} line problems", flush=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="録音装置の主処理 / the appliance's main job")
    p.add_argument("--fast", action="store_true",
                   help="実時間を待たずに処理し終了 / run the (simulated) lines as fast as "
                        "possible and exit when the scenario ends")
    p.add_argument("--interface", metavar="URL",
                   help="回線インタフェース / line interface URL, overrides [interface] url "
                        "(e.g. sim://scenarios/demo.toml)")
    p.add_argument("--demo-seconds", type=float, default=None, metavar="S",
                   help="内蔵デモ: 着信1件、通話 S 秒 / built-in demo: one incoming call "
                        "with caller ID and S seconds of talk")
    p.set_defaults(func=cmd_run)
