"""``appliance console``: the technician's login shell (appliance/console/)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from appliance.clock import SystemClock
from appliance.config import load_config
from appliance.store.datadir import DataDir


def cmd_console(args) -> int:
    from appliance.console.commands import SYSTEM_BIN_DIRS, ConsoleContext, ToolRunner
    from appliance.console.shell import ConsoleShell, session_info

    config = load_config(args.config)
    dd = DataDir(args.data_dir)
    clock = SystemClock()
    catalog = dd.open_catalog(clock.now()) if dd.initialised else None
    info = session_info()
    runner = ToolRunner(args.bin_dir or SYSTEM_BIN_DIRS)

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    def ask(prompt: str) -> str:
        try:
            return input(prompt)
        except EOFError:
            return ""

    def ask_secret(prompt: str) -> str:
        if not sys.stdin.isatty():
            return ask(prompt)
        import getpass
        try:
            return getpass.getpass(prompt)
        except EOFError:
            return ""

    ctx = ConsoleContext(dd.root, config, catalog, runner, clock.now, write, ask,
                         actor=f"{info['login']} (保守 technician)", session=info,
                         ask_secret=ask_secret)
    ended_by = "error"
    previous = {sig: signal.getsignal(sig) for sig in (*ENDING_SIGNALS, signal.SIGINT)}
    for sig in ENDING_SIGNALS:
        signal.signal(sig, _end_session)
    try:
        if catalog is None:
            write("注意: データディレクトリ未初期設定 / data directory not initialised: "
                  "'init' で初回設定 / run 'init' (the manager types their password)\n")
        ctx.ledger("login")
        ConsoleShell(ctx).cmdloop()
        ended_by = "exit"
        return 0
    except SessionEnded as end:
        ended_by = end.signame
        return 128 + end.signum
    finally:
        # a second signal (getty's SIGTERM after the line's SIGHUP) must not cut the entry
        for sig in (*ENDING_SIGNALS, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        try:
            if ctx.catalog is not None:
                ctx.ledger("logout", ended_by=ended_by)
        finally:
            if ctx.catalog is not None:     # ``init`` may have opened one
                ctx.catalog.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)


#: a line hang-up, Ctrl-\ (SIGQUIT) and a stop: each ends the session with its logout entry
ENDING_SIGNALS = (signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM)


class SessionEnded(BaseException):
    """Raised by the signal handler; a BaseException so no command's handler eats it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
        self.signame = signal.Signals(signum).name


def _end_session(signum, frame) -> None:
    raise SessionEnded(signum)


def register(sub) -> None:
    p = sub.add_parser("console", help="保守コンソール (シリアル端末のログインシェル) / the "
                                       "technician's serial console (login shell)")
    p.add_argument("--bin-dir", type=Path, action="append", metavar="DIR",
                   help="systemctl, timedatectl, journalctl, ip を探すディレクトリ (既定 /usr/bin "
                        "等、$PATH は使わない) / where the system tools are (default /usr/bin, "
                        "/usr/sbin; never $PATH); repeatable")
    p.set_defaults(func=cmd_console)
