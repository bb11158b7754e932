"""``appliance console``: the technician's login shell on the serial console (U2, R11).

A getty on the console port logs the technician in with their own account,
whose login shell this is. It always acts with the technician role: it
never asks for nor accepts staff credentials, and has no command that
reaches a number, caller-ID text or audio. It reads its terminal (a serial
line at 115200 8N1, or a pty in tests) with ``cmd`` and GNU readline for tab
completion; the output is plain UTF-8 text, Japanese first, with no colour
and no cursor addressing, so screen, minicom and PuTTY all show it as is.
``exit`` (or Ctrl-D) leaves; the session's start and end are on the ledger.
"""

from __future__ import annotations

import cmd
import os
import sys

from appliance.console.commands import COMMANDS, UNITS, ConsoleContext, Usage
from appliance.errors import ApplianceError
from appliance.ops.live import RecorderUnavailable

BANNER = ("通話録音装置 保守コンソール / call recorder technician console\n"
          "保守担当者として操作します (通話内容・電話番号は扱えません) / you act as a technician: "
          "no numbers, no audio\n"
          "'help' でコマンド一覧、Tab で補完、'exit' で終了 / 'help' lists commands, Tab "
          "completes, 'exit' leaves")
PROMPT = "保守> "


class ConsoleShell(cmd.Cmd):
    prompt = PROMPT
    intro = BANNER
    doc_header = "コマンド / commands ('help COMMAND' で説明 / for details):"
    misc_header = ""
    undoc_header = ""
    ruler = "-"

    def __init__(self, ctx: ConsoleContext, stdin=None, stdout=None) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        self.ctx = ctx
        # a pty or serial line gets readline (history, Tab); anything else is read line by line
        self.use_rawinput = bool(stdin is None and sys.stdin.isatty())
        if self.use_rawinput:
            try:
                import readline
                # bracketed paste writes escape sequences a plain serial terminal would show
                readline.parse_and_bind("set enable-bracketed-paste off")
                readline.set_completer_delims(" \t")
            except ImportError:
                self.use_rawinput = False

    # --- the loop ---------------------------------------------------------------------
    def emptyline(self) -> bool:
        return False

    def default(self, line: str) -> bool:
        self.ctx.say(f"不明なコマンド / unknown command: {line.split()[0][:40]!r} — 'help'")
        return False

    def onecmd(self, line: str) -> bool:
        try:
            return super().onecmd(line)
        except Usage as exc:
            self.ctx.say(f"使い方 / usage: {exc}")
        except RecorderUnavailable as exc:
            self.ctx.say(f"録音処理: 停止中 / recorder not running: {exc}")
        except ApplianceError as exc:
            self.ctx.say(f"エラー / error: {exc}")
        except KeyboardInterrupt:
            self.ctx.say("中断 / interrupted")
        return False

    def cmdloop(self, intro=None) -> None:
        # bounded by the terminal: each pass reads a line; EOF (hang-up, Ctrl-D) leaves
        while True:
            try:
                super().cmdloop(intro)
                return
            except KeyboardInterrupt:
                self.ctx.write("\n")
                intro = ""

    # --- built-ins ----------------------------------------------------------------------
    def do_exit(self, arg: str) -> bool:
        """exit: 保守コンソールを終了 / leave the console"""
        self.ctx.say("終了します / bye")
        return True

    def do_quit(self, arg: str) -> bool:
        """quit: exit と同じ / same as exit"""
        return self.do_exit(arg)

    def do_EOF(self, arg: str) -> bool:   # noqa: N802 — the name cmd gives Ctrl-D
        self.ctx.write("\n")
        return self.do_exit(arg)

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: コマンドの説明 / describe commands"""
        name = arg.strip()
        if name in COMMANDS:
            c = COMMANDS[name]
            self.ctx.say(f"{c.usage}\n  {c.help}")
            return
        if name in ("exit", "quit", "help"):
            self.ctx.say(getattr(self, f"do_{name}").__doc__)
            return
        self.ctx.say(self.doc_header)
        for n, c in COMMANDS.items():
            self.ctx.say(f"  {c.usage}")
            self.ctx.say(f"      {c.help}")
        self.ctx.say("  help [COMMAND]\n  exit")

    def get_names(self) -> list[str]:
        return [n for n in dir(self.__class__) if n != "do_EOF"]

    # --- completion ---------------------------------------------------------------------
    def _line_names(self) -> list[str]:
        try:
            return [f"{ln['trunk']}/{ln['channel']}" for ln in self.ctx.live()["lines"]]
        except (RecorderUnavailable, KeyError):
            return []

    def complete_selftest(self, text, line, begidx, endidx):
        return [n for n in self._line_names() if n.startswith(text)]

    complete_notice = complete_selftest

    def complete_restart(self, text, line, begidx, endidx):
        return [n for n in (*UNITS, "all") if n.startswith(text)]

    def complete_shutdown(self, text, line, begidx, endidx):
        return [n for n in ("poweroff", "reboot") if n.startswith(text)]

    def complete_time(self, text, line, begidx, endidx):
        return ["set"] if "set".startswith(text) and len(line.split()) <= 2 else []

    def complete_log(self, text, line, begidx, endidx):
        return ["journal"] if "journal".startswith(text) and len(line.split()) <= 2 else []

    def complete_help(self, text, *args):
        return [n for n in (*COMMANDS, "exit", "help") if n.startswith(text)]


def _make(name: str):
    def do(self: ConsoleShell, arg: str) -> bool:
        COMMANDS[name].fn(self.ctx, arg)
        return False
    do.__doc__ = f"{COMMANDS[name].usage}: {COMMANDS[name].help}"
    do.__name__ = f"do_{name}"
    return do


for _name in COMMANDS:
    setattr(ConsoleShell, f"do_{_name}", _make(_name))


def session_info() -> dict:
    """Who is at the console (the Unix login the getty authenticated) and on which line."""
    try:
        tty = os.ttyname(0)
    except OSError:
        tty = None
    login = os.environ.get("LOGNAME") or os.environ.get("USER") or str(os.getuid())
    return {"login": login[:32], "tty": tty}
