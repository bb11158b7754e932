"""The technician's console commands (U2, R11): diagnostics without content.

Every command here works from what a technician may know: line states,
durations, directions, levels, counters, storage counts, alarms and the
system's own tools. None reads a telephone number, caller-ID text or audio,
and the technician-level log masks any long run of digits as a last guard.
Every command run lands on the 通話記録管理簿 as 保守 (maintenance).

System tools (systemctl, timedatectl, journalctl, ip) are run through a
:class:`ToolRunner` that looks them up only in fixed directories, never in
``$PATH``: a login shell must not be steered by its environment, and tests
point it at harmless fakes.
"""

from __future__ import annotations

import shutil
import subprocess
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from appliance.config import Config
from appliance.governance.ledger import KIND_LABELS_JA, EntryKind, Ledger
from appliance.governance.retention import RetentionPolicy
from appliance.logtext import redact  # noqa: F401 — the console's last guard, NFKC-normalised
from appliance.ops.alarms import (SEVERITY_JA, AlarmCode, AlarmError, AlarmRegistry,
                                  alarm_history, read_alarms)
from appliance.ops.live import RecorderUnavailable, query, socket_path
from appliance.ops.monitor import AlarmSettings
from appliance.store.catalog import TOKYO, Catalog, to_local_text, to_utc_text
from appliance.store.datadir import DataDir

SYSTEM_BIN_DIRS = (Path("/usr/bin"), Path("/usr/sbin"), Path("/bin"), Path("/sbin"))
UNITS = {"recorder": "appliance-recorder.service", "web": "appliance-web.service"}
STATE_JA = {"recording": "録音中", "complete": "完了", "truncated": "途中切断",
            "unanswered": "不応答", "erased": "廃棄済"}
DIRECTION_JA = {"in": "着信 / in", "out": "発信 / out"}
YES = ("はい", "yes", "y")


class ToolRunner:
    """Runs system tools found only in ``bin_dirs``; a missing tool is exit 127."""

    def __init__(self, bin_dirs: Sequence[Path] = SYSTEM_BIN_DIRS, timeout: float = 30.0) -> None:
        self.bin_dirs = [Path(d) for d in bin_dirs]
        self.timeout = timeout

    def which(self, name: str) -> Path | None:
        if "/" in name:
            return None
        for d in self.bin_dirs:
            p = d / name
            if p.is_file():
                return p
        return None

    def __call__(self, argv: Sequence[str]) -> subprocess.CompletedProcess:
        exe = self.which(argv[0])
        if exe is None:
            return subprocess.CompletedProcess(list(argv), 127, "", f"{argv[0]}: not found")
        try:
            return subprocess.run([str(exe), *argv[1:]], capture_output=True, text=True,
                                  timeout=self.timeout, check=False, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(list(argv), 124, "", "timed out")
        except OSError as exc:
            return subprocess.CompletedProcess(list(argv), 126, "", str(exc))


@dataclass
class ConsoleContext:
    data_dir: Path
    config: Config
    catalog: Catalog | None
    runner: Callable[[Sequence[str]], subprocess.CompletedProcess]
    now: Callable[[], datetime]
    write: Callable[[str], None]
    ask: Callable[[str], str]
    actor: str = "technician"
    session: dict = field(default_factory=dict)
    sleep: Callable[[float], None] = _time.sleep
    refresh_s: float = 0.5
    #: reads a line without echo (getpass on a terminal); only ``init`` uses it
    ask_secret: Callable[[str], str] | None = None

    def say(self, text: str = "") -> None:
        self.write(text + "\n")

    def ledger(self, command: str, **detail) -> None:
        """One 保守 entry per command: who, what, and the outcome (never content)."""
        if self.catalog is None:
            self.say("注意: データ未初期設定のため管理簿に記録できません / "
                     "not initialised: no ledger entry")
            return
        Ledger(self.catalog).append(EntryKind.MAINTENANCE, self.now(), actor=self.actor,
                                    detail={"console": command, "role": "technician",
                                            **self.session, **detail})

    def live(self, request: dict | None = None) -> dict:
        return query(socket_path(self.data_dir), request or {"cmd": "status"})

    def confirm(self, question: str) -> bool:
        answer = self.ask(f"{question} [はい/yes で実行 / type yes to go on] ").strip().lower()
        return answer in YES


class Usage(Exception):
    """A command was given wrong arguments; the message says how to use it."""


# --- helpers ----------------------------------------------------------------------------
def _hms(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _line_arg(arg: str, lines: list[dict]) -> dict:
    parts = arg.replace("/", " ").split()
    if not parts:
        raise Usage("回線を指定してください (例: T1/1) / name a line, e.g. T1/1")
    trunk = parts[0]
    ch = parts[1] if len(parts) > 1 else "1"
    for ln in lines:
        if ln["trunk"] == trunk and str(ln["channel"]) == ch:
            return ln
    raise Usage(f"回線 {trunk}/{ch} はありません / no such line (see 'status')")


def _recorder_down(ctx: ConsoleContext, exc: Exception) -> None:
    ctx.say(f"録音処理: 停止中 / recorder: not running — {exc}")


def _notice_recorder(ctx: ConsoleContext, answering: bool) -> None:
    """Whoever notices a silent recorder raises the alarm (and clears it when it answers)."""
    if ctx.catalog is None:
        return
    registry = AlarmRegistry(ctx.catalog, ctx.now, actor=ctx.actor)
    if answering:
        registry.clear(AlarmCode.RECORDER_NOT_ANSWERING)
    else:
        registry.raise_(AlarmCode.RECORDER_NOT_ANSWERING, "",
                        "保守コンソールで確認 / noticed at the console")


def _bar(dbfs: float, width: int = 20) -> str:
    filled = max(0, min(width, int(round((dbfs + 60.0) / 60.0 * width))))
    return "|" + "#" * filled + "." * (width - filled) + "|"


# --- commands ---------------------------------------------------------------------------
def cmd_status(ctx: ConsoleContext, arg: str) -> None:
    now = ctx.now().astimezone(TOKYO)
    ctx.say(f"装置の状態 / status — {now:%Y-%m-%d %H:%M:%S} JST, {ctx.config.site.name}")
    try:
        snap = ctx.live()
    except RecorderUnavailable as exc:
        _recorder_down(ctx, exc)
        snap = None
    _notice_recorder(ctx, snap is not None)
    if snap is not None:
        ctx.say(f"録音処理: 稼働中 / recorder: running (回線時間 line time {snap['line_time_s']:.0f} s)")
        ctx.say(f"{'回線 line':<10} {'状態 / state':<28} {'方向 / direction':<14} 継続 / duration")
        for ln in snap["lines"]:
            way = DIRECTION_JA.get(ln["direction"] or "", "-")
            ctx.say(f"{ln['trunk'] + '/' + str(ln['channel']):<10} {ln['state_label']:<28} "
                    f"{way:<14} {_hms(ln['duration_s'])}")
        for d in snap["devices"]:
            state = "切断 / LOST" if d["lost"] else "接続 / connected"
            ctx.say(f"インタフェース / interface {d['device']}: {state}")
    alarms = read_alarms(ctx.catalog) if ctx.catalog is not None else []
    ctx.say(f"警報 / alarms: {len(alarms)} 件" + (" — 'alarms' で詳細 / see 'alarms'" if alarms else ""))
    ctx.ledger("status", recorder_running=snap is not None, alarms=len(alarms))


def cmd_alarms(ctx: ConsoleContext, arg: str) -> None:
    parts = arg.split(None, 2)
    if parts and parts[0] == "ack":
        return _alarms_ack(ctx, parts[1:])
    if parts:
        raise Usage("alarms | alarms ack CODE 内容 / alarms ack CODE NOTE")
    alarms = read_alarms(ctx.catalog) if ctx.catalog is not None else []
    if not alarms:
        ctx.say("警報なし / no active alarms")
    for a in alarms:
        where = f" [{a.subject}]" if a.subject else ""
        ack = (f"確認 acknowledged {a.acknowledged_by} {a.acknowledged_at}" if a.acknowledged_by
               else "未確認 / NOT acknowledged")
        ctx.say(f"警報 / ALARM [{SEVERITY_JA.get(a.severity, a.severity)} {a.severity}] "
                f"{a.label}{where} ({a.code}) 発生 raised {a.raised_at}, 最終 last {a.last_at}, "
                f"{a.count} 回 — {ack}")
        if a.detail:
            ctx.say(f"    {redact(a.detail)}")
    ctx.ledger("alarms", active=[a.code for a in alarms])


def _alarms_ack(ctx: ConsoleContext, parts: list[str]) -> None:
    if len(parts) < 2 or not parts[1].strip():
        raise Usage("alarms ack CODE 内容 / alarms ack CODE NOTE (内容は必須 / a note is required)")
    if ctx.catalog is None:
        ctx.say("未初期設定 / not initialised")
        return
    registry = AlarmRegistry(ctx.catalog, ctx.now, actor=ctx.actor)
    try:
        done = registry.acknowledge(parts[0], ctx.actor, parts[1])
    except AlarmError as exc:
        ctx.say(str(exc))
        ctx.ledger("alarms ack", code=parts[0], result="refused")
        return
    for a in done:
        ctx.say(f"確認しました / acknowledged: {a.label}"
                + (f" [{a.subject}]" if a.subject else "") + f" ({a.code})")
    ctx.ledger("alarms ack", code=parts[0], acknowledged=len(done))


def cmd_alarm(ctx: ConsoleContext, arg: str) -> None:
    """``alarm test``: a test alarm through every delivery path; ``alarm paths``: the outbox."""
    import socket

    from appliance.ops.delivery import Outbox, describe_state, load_paths, send_test
    which = arg.strip()
    if which not in ("test", "paths"):
        raise Usage("alarm test | alarm paths")
    base = ctx.config.source.parent if ctx.config.source is not None else ctx.data_dir
    paths = load_paths(ctx.config.raw.get("alarms"), base, ctx.now)
    if which == "paths":
        rows = Outbox(ctx.catalog, ctx.now).state() if ctx.catalog is not None else []
        ctx.say("警報の送信先 / delivery paths: " + (", ".join(paths.names) or
                                                  "未設定 / none configured"))
        for line in describe_state(rows):
            ctx.say("  " + redact(line))
        ctx.ledger("alarm paths", paths=paths.names)
        return
    if not paths.names:
        ctx.say("送信先が設定されていません ([alarms.syslog] [alarms.mail] [alarms.snmp]) / no "
                "delivery path is configured")
        ctx.ledger("alarm test", results={})
        return
    ctx.say("試験警報を送信中 / sending a test alarm through every path …")
    results = send_test(paths, ctx.config.site.name, socket.gethostname(), ctx.now(), ctx.actor)
    for name, result in results.items():
        ok = result == "ok"
        ctx.say(f"  {name}: " + ("送信成功 / OK" if ok else f"失敗 / FAILED — {redact(result)}"))
    ctx.ledger("alarm test", results={k: ("ok" if v == "ok" else "failed")
                                      for k, v in results.items()})


def cmd_levels(ctx: ConsoleContext, arg: str) -> None:
    try:
        n = int(arg.strip() or 5)
    except ValueError:
        raise Usage("levels [回数 1–120] / levels [refreshes 1–120]") from None
    if not 1 <= n <= 120:
        raise Usage("levels [回数 1–120] / levels [refreshes 1–120]")
    shown = 0
    try:
        for i in range(n):
            try:
                snap = ctx.live()
            except RecorderUnavailable as exc:
                _recorder_down(ctx, exc)
                break
            ctx.say(f"レベル / levels (dBFS, -60…0)  {i + 1}/{n}")
            for ln in snap["lines"]:
                name = f"{ln['trunk']}/{ln['channel']}"
                ctx.say(f"{name:<8} 遠端 far  {ln['level_far_dbfs']:6.1f} {_bar(ln['level_far_dbfs'])}")
                ctx.say(f"{'':<8} 近端 near {ln['level_near_dbfs']:6.1f} {_bar(ln['level_near_dbfs'])}")
            shown += 1
            if i + 1 < n:
                ctx.sleep(ctx.refresh_s)
    except KeyboardInterrupt:
        ctx.say("中断 / stopped")
    ctx.ledger("levels", refreshes=shown)


def _run_test(ctx: ConsoleContext, kind: str, line: dict, wait_s: float) -> dict:
    t = ctx.live({"cmd": "test", "kind": kind, "trunk": line["trunk"],
                  "channel": line["channel"]})
    if "error" in t:
        return t
    deadline = _time.monotonic() + wait_s
    while t.get("state") in ("queued", "running") and _time.monotonic() < deadline:
        ctx.sleep(0.2)
        t = ctx.live({"cmd": "test_result", "id": t["id"]})
    return t


TEST_JA = {"passed": "合格 / PASS", "failed": "不合格 / FAIL", "refused": "実行せず / NOT RUN",
           "aborted": "中断 / ABORTED", "queued": "未完了 / TIMED OUT",
           "running": "未完了 / TIMED OUT"}


def cmd_selftest(ctx: ConsoleContext, arg: str) -> None:
    try:
        snap = ctx.live()
    except RecorderUnavailable as exc:
        _recorder_down(ctx, exc)
        ctx.ledger("selftest", result="recorder_not_running")
        return
    line = _line_arg(arg, snap["lines"])
    name = f"{line['trunk']}/{line['channel']}"
    ctx.say(f"回線試験 / line self-test {name}")
    results = {}
    if line["state"] != "idle":
        ctx.say(f"  実行せず: 回線は {line['state_label']} / not run: the line is not idle")
        ctx.ledger("selftest", line=name, result="line_busy")
        return
    if line["analog"]:
        ok = not line["loop_closed"]
        results["loop"] = "pass" if ok else "fail"
        ctx.say("  ループ電流 / loop current: " + ("開 (待機として正常) / open, as idle: 合格 / PASS"
                                               if ok else "閉のまま / closed while idle: 不合格 / FAIL"))
        ago = line["last_ring_ago_s"]
        ctx.say(f"  呼出検出 / ring detector: 検出 {line['rings']} 回 / {line['rings']} rings seen"
                + (f", 最終 {_hms(ago)} 前 / last {_hms(ago)} ago" if ago is not None else "")
                + " — 携帯電話から着信させて回数の増加を確認 / call the line to see it count")
    ctx.say(f"  無信号時間 / quiet for {_hms(line['quiet_s'])}; "
            f"レベル far {line['level_far_dbfs']:.1f} / near {line['level_near_dbfs']:.1f} dBFS")
    ctx.say("  音声経路 / audio path: 1 kHz 試験音を送出中 / sending a 1 kHz test tone …")
    t = _run_test(ctx, "tone", line, 6.0)
    state = t.get("state", t.get("error", "error"))
    results["audio"] = state
    gain = f" (利得 gain {t['gain_db']:.1f} dB)" if t.get("gain_db") is not None else ""
    ctx.say(f"  音声経路 / audio path: {TEST_JA.get(state, state)}{gain}")
    ctx.ledger("selftest", line=name, results=results)


def cmd_notice(ctx: ConsoleContext, arg: str) -> None:
    try:
        snap = ctx.live()
    except RecorderUnavailable as exc:
        _recorder_down(ctx, exc)
        ctx.ledger("notice", result="recorder_not_running")
        return
    line = _line_arg(arg, snap["lines"])
    name = f"{line['trunk']}/{line['channel']}"
    if line["state"] != "idle":
        ctx.say(f"実行せず: 回線 {name} は {line['state_label']} / not run: the line is not idle")
        ctx.ledger("notice", line=name, result="line_busy")
        return
    ctx.say(f"音声案内を試験回線 {name} に送出中 / playing the notice on test line {name} …")
    t = _run_test(ctx, "notice", line, 75.0)
    state = t.get("state", t.get("error", "error"))
    heard = {"passed": "回線上で確認 / heard on the line",
             "failed": "回線上で確認できません / NOT heard on the line"}.get(state, "")
    ctx.say(f"音声案内 / notice: {TEST_JA.get(state, state)} {heard}".rstrip())
    ctx.ledger("notice", line=name, result=state)


def _flat(prefix: str, value, out: list[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}", v, out)
    else:
        out.append(f"  {prefix:<28} {value}")


def cmd_interface(ctx: ConsoleContext, arg: str) -> None:
    try:
        snap = ctx.live()
    except RecorderUnavailable as exc:
        _recorder_down(ctx, exc)
        ctx.ledger("interface", result="recorder_not_running")
        return
    info = snap["interface"]
    ctx.say(f"回線インタフェース / line interface: {info.get('backend')}, "
            f"{info.get('lines')} 回線 / lines, "
            + ("接続 / connected" if info.get("connected") else "切断 / NOT connected"))
    out: list[str] = []
    if info.get("identity"):
        ctx.say("識別 / identity (USB, firmware):")
        _flat("", info["identity"], out)
    else:
        out.append("  識別情報なし / this backend reports no identity")
    if info.get("stats"):
        out.append("プロトコル計数 / protocol counters, xruns:")
        _flat("", info["stats"], out)
    out.append("取込み計数 / capture counters:")
    _flat("", snap["engine"], out)
    for line in out:
        ctx.say(redact(line))
    ctx.ledger("interface", backend=info.get("backend"))


def cmd_storage(ctx: ConsoleContext, arg: str) -> None:
    usage = shutil.disk_usage(ctx.data_dir)
    mb = 1024 * 1024
    policy = RetentionPolicy.from_config(ctx.config.raw.get("retention"))
    warn = AlarmSettings.from_config(ctx.config.raw.get("alarms")).disk_warn_mb
    ctx.say(f"記憶領域 / storage {ctx.data_dir}")
    ctx.say(f"  容量 total {usage.total // mb} MB, 使用 used {usage.used // mb} MB, "
            f"空き free {usage.free // mb} MB ({100 * usage.free / max(1, usage.total):.0f}%)")
    ctx.say(f"  警告 warn below {warn} MB; 最低空き容量 minimum {policy.min_free_mb} MB "
            "(下回ると古い記録から廃棄 / below it the oldest records go first)")
    counts: dict = {}
    if ctx.catalog is not None:
        cat = ctx.catalog
        counts = {r[0]: r[1] for r in cat.conn.execute(
            "SELECT state, COUNT(*) FROM calls GROUP BY state")}
        ctx.say("  件数 / records: " + (", ".join(
            f"{STATE_JA.get(k, k)} {k} {v}" for k, v in sorted(counts.items())) or "なし / none"))
        oldest = cat.conn.execute(
            "SELECT MIN(started_at) FROM calls WHERE state != 'erased'").fetchone()[0]
        held = cat.conn.execute(
            "SELECT COUNT(DISTINCT call_id) FROM holds WHERE released_at IS NULL"
            " AND (until IS NULL OR until > ?)", (to_utc_text(ctx.now()),)).fetchone()[0]
        if oldest:
            day = datetime.fromisoformat(oldest).astimezone(TOKYO).date()
            ctx.say(f"  最古の記録 / oldest record: {day.isoformat()} "
                    f"(廃棄予定 erasable from {policy.erasable_from(day).isoformat()})")
        else:
            ctx.say("  最古の記録 / oldest record: なし / none")
        horizon = policy.last_expired_day(ctx.now())
        ctx.say(f"  保管期間 / retention: {policy.describe_ja()} — {horizon.isoformat()} 以前の記録は"
                f"廃棄対象 / records of {horizon.isoformat()} and before are due")
        ctx.say(f"  保管延長中 / held: {held}")
        disk = [a for a in read_alarms(cat) if a.code in ("disk_nearly_full", "retention_at_risk")]
        ctx.say("  容量の警報 / storage alarms: " + (
            ", ".join(a.label for a in disk) if disk else "なし / none"))
    ctx.ledger("storage", free_mb=usage.free // mb, records=sum(counts.values()))


def _timedatectl(ctx: ConsoleContext) -> dict | None:
    r = ctx.runner(["timedatectl", "show"])
    if r.returncode != 0:
        return None
    return dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)


def cmd_time(ctx: ConsoleContext, arg: str) -> None:
    parts = arg.split(None, 2)
    if parts and parts[0] == "set":
        return _time_set(ctx, parts[1:])
    if parts:
        raise Usage("time | time set YYYY-MM-DDTHH:MM:SS 理由 / reason")
    now = ctx.now()
    ctx.say(f"時刻 / time: {now.astimezone(TOKYO):%Y-%m-%d %H:%M:%S} JST "
            f"({now:%Y-%m-%d %H:%M:%S} UTC)")
    info = _timedatectl(ctx)
    if info is None:
        ctx.say("NTP 同期 / NTP: 不明 / unknown (timedatectl unavailable)")
        ctx.say("RTC: 不明 / unknown")
        ctx.ledger("time", ntp="unknown")
        return
    sync = {"yes": "同期済 / synchronised", "no": "未同期 / NOT synchronised"}.get(
        info.get("NTPSynchronized", ""), "不明 / unknown")
    ntp = {"yes": "有効 / on", "no": "無効 / off"}.get(info.get("NTP", ""), "不明 / unknown")
    ctx.say(f"NTP 同期 / NTP: {sync} (NTP サービス service {ntp})")
    ctx.say(f"タイムゾーン / time zone: {info.get('Timezone', '不明 / unknown')}")
    rtc = info.get("RTCTimeUSec")
    ctx.say(f"RTC: {rtc if rtc else '不明 / unknown (no RTC reported)'}"
            + (" (local)" if info.get("LocalRTC") == "yes" else ""))
    ctx.ledger("time", ntp=info.get("NTPSynchronized", "unknown"))


def _time_set(ctx: ConsoleContext, parts: list[str]) -> None:
    usage = "time set YYYY-MM-DDTHH:MM[:SS] 理由 / reason (日本時間 / Japan time)"
    if len(parts) < 2 or len(parts[1].strip()) < 4:
        raise Usage(usage + " — 理由は必須 / a reason is required")
    try:
        new = datetime.fromisoformat(parts[0])
    except ValueError:
        raise Usage(usage) from None
    new = new if new.tzinfo else new.replace(tzinfo=TOKYO)
    reason = parts[1].strip()
    info = _timedatectl(ctx)
    if info is not None and info.get("NTPSynchronized") == "yes":
        ctx.say("拒否: NTP 同期中は手動で設定できません / refused: the clock is NTP-synchronised")
        ctx.ledger("time set", result="refused_ntp_synchronised", reason=reason)
        return
    old = ctx.now()
    jump = abs((new - old).total_seconds())
    ctx.say(f"現在 / now {old.astimezone(TOKYO):%Y-%m-%d %H:%M:%S} → "
            f"{new.astimezone(TOKYO):%Y-%m-%d %H:%M:%S} JST (差 {jump:.0f} s)")
    if not ctx.confirm("時刻を設定しますか / set the clock?"):
        ctx.say("取り消しました / cancelled")
        ctx.ledger("time set", result="cancelled", reason=reason)
        return
    # in UTC, whatever the system's time zone: timedatectl accepts a trailing "UTC"
    stamp = new.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    r = ctx.runner(["timedatectl", "set-time", stamp])
    ok = r.returncode == 0
    ctx.say("設定しました / clock set" if ok else
            f"失敗 / failed: {redact((r.stderr or '').strip()[:200])}")
    ctx.ledger("time set", result="done" if ok else "failed", reason=reason,
               old=to_local_text(to_utc_text(old)), new=to_local_text(to_utc_text(new)))


def cmd_network(ctx: ConsoleContext, arg: str) -> None:
    ctx.say("ネットワーク設定 / network settings (表示のみ / read-only)")
    for title, argv in (("アドレス / addresses", ["ip", "-brief", "address", "show"]),
                        ("経路 / routes", ["ip", "route", "show"])):
        r = ctx.runner(argv)
        ctx.say(f"{title}:")
        text = r.stdout.strip() if r.returncode == 0 else "不明 / unknown (ip unavailable)"
        for line in text.splitlines()[:40]:
            ctx.say(f"  {line}")
    try:
        dns = [ln.split()[1] for ln in Path("/etc/resolv.conf").read_text().splitlines()
               if ln.startswith("nameserver") and len(ln.split()) > 1]
    except OSError:
        dns = []
    ctx.say("DNS: " + (", ".join(dns[:4]) if dns else "不明 / unknown"))
    ctx.ledger("network")


def cmd_log(ctx: ConsoleContext, arg: str) -> None:
    parts = arg.split()
    journal = bool(parts) and parts[0] == "journal"
    if journal:
        parts = parts[1:]
    try:
        n = int(parts[0]) if parts else 20
    except ValueError:
        raise Usage("log [件数 1–200] | log journal [件数] / log [count] | log journal [count]") from None
    n = max(1, min(n, 200))
    if journal:
        ctx.say(f"ジャーナル / journal (appliance-recorder, 最新 {n} 行, 数字列は伏せ字 / digits masked)")
        r = ctx.runner(["journalctl", "-u", UNITS["recorder"], "-n", str(n), "--no-pager",
                        "-o", "short-iso"])
        if r.returncode != 0:
            ctx.say("  不明 / unavailable (journalctl)")
        for line in r.stdout.splitlines()[-n:]:
            ctx.say("  " + redact(line)[:200])
        ctx.ledger("log journal", lines=n)
        return
    if ctx.catalog is None:
        ctx.say("未初期設定 / not initialised")
        return
    cat = ctx.catalog
    ctx.say(f"警報履歴 / alarm history (最新 {n} 件 / newest {n})")
    for a in alarm_history(cat, n):
        end = f"解除 cleared {a['cleared_at']}" if a["cleared_at"] else "継続中 / ACTIVE"
        ctx.say(redact(f"  {a['raised_at']} {a['label']}"
                       + (f" [{a['subject']}]" if a["subject"] else "") + f" — {end}"))
    ctx.say(f"保守記録 / maintenance entries (最新 {n} 件 / newest {n})")
    rows = cat.conn.execute(
        "SELECT at, actor, detail FROM ledger WHERE kind = ? ORDER BY seq DESC LIMIT ?",
        (str(EntryKind.MAINTENANCE), n)).fetchall()
    for at, actor, detail in rows:
        ctx.say(redact(f"  {to_local_text(at)} {KIND_LABELS_JA[EntryKind.MAINTENANCE]} "
                       f"{actor}: {detail}")[:240])
    ctx.say("日別件数 / records per day (7 日 / days)")
    since = to_utc_text(ctx.now() - timedelta(days=7))
    per_day: dict[str, int] = {}
    for (started,) in cat.conn.execute("SELECT started_at FROM calls WHERE started_at >= ?",
                                       (since,)):
        day = datetime.fromisoformat(started).astimezone(TOKYO).date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    for day in sorted(per_day):
        ctx.say(f"  {day}: {per_day[day]} 件")
    if not per_day:
        ctx.say("  なし / none")
    ctx.ledger("log", count=n)


def _busy_lines(ctx: ConsoleContext) -> list[str] | None:
    try:
        snap = ctx.live()
    except RecorderUnavailable:
        return None
    return [f"{ln['trunk']}/{ln['channel']}" for ln in snap["lines"] if ln["state"] != "idle"]


def cmd_restart(ctx: ConsoleContext, arg: str) -> None:
    which = arg.strip() or "recorder"
    if which not in (*UNITS, "all"):
        raise Usage("restart recorder | web | all")
    units = list(UNITS.values()) if which == "all" else [UNITS[which]]
    if which in ("recorder", "all"):
        busy = _busy_lines(ctx)
        if busy:
            ctx.say(f"注意: 使用中の回線 {len(busy)} / {len(busy)} line(s) in use "
                    f"({', '.join(busy)}): 録音中の通話は途中で終わります / "
                    "calls being recorded will be cut")
    if not ctx.confirm(f"{' '.join(units)} を再起動しますか / restart?"):
        ctx.say("取り消しました / cancelled")
        ctx.ledger("restart", units=units, result="cancelled")
        return
    results = {}
    for unit in units:
        r = ctx.runner(["systemctl", "restart", unit])
        results[unit] = r.returncode
        ctx.say(f"{unit}: " + ("再起動しました / restarted" if r.returncode == 0 else
                               f"失敗 / failed ({r.returncode})"))
    ctx.ledger("restart", units=units, result=results)


def cmd_shutdown(ctx: ConsoleContext, arg: str) -> None:
    how = arg.strip() or "poweroff"
    if how not in ("poweroff", "reboot"):
        raise Usage("shutdown [poweroff | reboot]")
    busy = _busy_lines(ctx)
    if busy:
        ctx.say(f"注意: 使用中の回線 {len(busy)} / {len(busy)} line(s) in use "
                f"({', '.join(busy)}): 通話を閉じてから停止します / calls are closed first")
    label = "電源を切り" if how == "poweroff" else "再起動し"
    if not ctx.confirm(f"録音を安全に終了して{label}ますか / stop recording safely and {how}?"):
        ctx.say("取り消しました / cancelled")
        ctx.ledger("shutdown", how=how, result="cancelled")
        return
    # ledger first: after this command the machine may be gone
    ctx.ledger("shutdown", how=how, result="requested")
    r = ctx.runner(["systemctl", how])
    if r.returncode == 0:
        ctx.say("停止処理中: 録音処理は通話を閉じてから止まります。電源ランプが消えるまで待ってください / "
                "shutting down: the recorder closes its calls first; wait for the power LED")
    else:
        ctx.say(f"失敗 / failed ({r.returncode}): {redact((r.stderr or '').strip()[:200])}")


def cmd_init(ctx: ConsoleContext, arg: str) -> None:
    """First boot only: create the archive keys and the first 管理責任者.

    The manager types their own name and password at the console (the
    technician hands over the keyboard); this is the one time the console
    takes a staff password, and only while no data directory exists, so it
    can never be used to sign in. The recovery key is shown once.
    """
    from appliance.governance.setup import initialise
    dd = DataDir(ctx.data_dir)
    if ctx.catalog is not None or dd.initialised:
        ctx.say("初期設定済みです / already initialised")
        ctx.ledger("init", result="refused: already initialised")
        return
    ctx.say("初回設定: 管理責任者ご本人が入力してください / first-boot set-up: the manager "
            "(人事課長) types the following")
    name = ctx.ask("管理責任者の利用者名 / manager's user name: ").strip()
    secret = ctx.ask_secret or ctx.ask
    pw1 = secret("パスワード (8文字以上, 表示されません) / password (8+, not shown): ")
    pw2 = secret("もう一度 / again: ")
    if not name or pw1 != pw2:
        ctx.say("名前が空か、パスワードが一致しません / empty name or the passwords differ: "
                "取り消しました / cancelled")
        return
    recovery = initialise(dd, name, pw1.encode(), ctx.now(),
                          actor=f"{name} (console: {ctx.actor})")
    ctx.catalog = dd.open_catalog(ctx.now())
    ctx.say("回復キー / RECOVERY KEY (一度だけ表示 / shown once) — 印刷して市の金庫へ / print it "
            "for the city's safe:")
    ctx.say(f"  {recovery}")
    ctx.say(f"初期設定完了 / initialised: 管理責任者 {name}. 録音を開始するには 'restart recorder' "
            "/ 'restart recorder' starts recording")
    ctx.ledger("init", manager=name)


@dataclass(frozen=True)
class Command:
    fn: Callable[[ConsoleContext, str], None]
    usage: str
    help: str


COMMANDS: dict[str, Command] = {
    "init": Command(cmd_init, "init",
                    "初回設定 (未設定時のみ): 管理責任者と保管鍵を作成 / first boot only: create the "
                    "manager and the archive keys"),
    "status": Command(cmd_status, "status",
                      "各回線の状態 (待機・着信・通話中、方向、継続時間) / each line: idle, ringing "
                      "or in call, with direction and duration; never a number"),
    "alarms": Command(cmd_alarms, "alarms | alarms ack CODE NOTE",
                      "発生中の警報 (未確認・重大なものが先); 'alarms ack' で確認 (内容は管理簿へ) / "
                      "raised alarms, unacknowledged and most severe first; 'alarms ack' "
                      "acknowledges one code with a note (on the ledger)"),
    "alarm": Command(cmd_alarm, "alarm test | alarm paths",
                     "試験警報を設定済みの全送信先 (syslog・メール・SNMP) へ送り結果を表示; 'alarm paths' は"
                     "送信待ちの件数 / send a test alarm through every configured path (syslog, "
                     "mail, SNMP) and report each result; 'alarm paths': what waits per path"),
    "levels": Command(cmd_levels, "levels [N]",
                      "回線ごと・遠端/近端のレベル表示 (N 回更新、既定 5) / live level meters per "
                      "trunk and leg, refreshed N times (default 5); Ctrl-C stops"),
    "selftest": Command(cmd_selftest, "selftest LINE",
                        "回線試験: ループ電流、呼出検出、試験音による音声経路 (待機中の回線のみ) / line "
                        "self-test: loop current, ring detector, audio path with a test tone "
                        "(idle lines only); LINE like T1/1"),
    "notice": Command(cmd_notice, "notice LINE",
                      "試験回線に音声案内を送出し回線上で確認 / play the recording notice on an idle "
                      "test line and check it was heard"),
    "interface": Command(cmd_interface, "interface",
                         "回線インタフェースの情報: USB 識別、ファームウェア、プロトコル計数、xrun / "
                         "interface info: USB identity, firmware, protocol counters, xruns"),
    "storage": Command(cmd_storage, "storage",
                       "空き容量、最古の記録の日付、保管期間、容量の警報 (件数のみ) / free space, "
                       "oldest record's date, retention horizon, storage alarms (counts only)"),
    "time": Command(cmd_time, "time | time set YYYY-MM-DDTHH:MM:SS REASON",
                    "時刻、NTP 同期、RTC; 'time set' は理由を付けて手動設定 (NTP 未同期時のみ、管理簿に"
                    "記録) / clock, NTP state, RTC; 'time set' with a reason (only while NTP is "
                    "not synchronised; on the ledger)"),
    "network": Command(cmd_network, "network",
                       "ネットワーク設定の表示 / network settings (read-only)"),
    "log": Command(cmd_log, "log [N] | log journal [N]",
                   "保守用ログ: 警報履歴、保守記録、日別件数 (番号なし); 'log journal' は録音処理の"
                   "ジャーナル (数字列は伏せ字) / technician-level log: alarm history, maintenance "
                   "entries, records per day; 'log journal': the recorder's journal, digits masked"),
    "restart": Command(cmd_restart, "restart recorder | web | all",
                       "サービスの再起動 (確認あり) / restart services (asks first)"),
    "shutdown": Command(cmd_shutdown, "shutdown [poweroff | reboot]",
                        "録音を安全に終了して電源断/再起動 (確認あり) / safe shutdown: calls are "
                        "closed first (asks first)"),
}
