"""Hardware stand-ins in a process of their own, driven over a small control channel.

Why a process: alsa-lib opens an ALSA ``file`` PCM's FIFO without releasing
the GIL (pyalsaaudio's ``PCM()`` holds it through ``snd_pcm_open``). A
stand-in thread in the same process that must open or feed the other end of
that FIFO then never runs, and the host waits forever (seen here: the suite
hung 15 minutes under CPU load, shared/reference/platform.md). In a child
process the stand-in has its own interpreter: nothing the host does in C can
stop it, and no test depends on two threads of one process racing for the
GIL around a blocking C call.

The channel is a Unix stream socket pair, one JSON object per line:
the host sends ``{"op": NAME, ...}`` and gets ``{"ok": true, "result": …}``
or ``{"ok": false, "error": TEXT}`` back, each read bounded by a timeout.
The child exits when told to stop or when the host's end closes (a crashed
or killed host leaves no stand-in behind); the host stops it by its own pid
(terminate, then kill) if it does not exit in time.

Roles: ``emulator`` (the USB interface emulator, appliance/tapi/emulator.py)
and ``gpio-audio`` (the audio side of the single-line GPIO stand-in,
appliance/tapi/gpio_emulator.py — its pins stay in the host: see there).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from appliance.errors import ApplianceError

#: longest line the channel accepts (a stand-in's whole history fits with room)
MAX_LINE = 64 * 1024 * 1024


class StandinError(ApplianceError, RuntimeError):
    """The stand-in refused a request, failed, or did not answer in time."""


class Channel:
    """JSON lines over a connected stream socket, every read bounded."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buf = bytearray()

    def send(self, obj) -> None:
        self.sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")

    def recv(self, timeout: float | None):
        """The next object; ``None`` at end of stream; TimeoutError after ``timeout`` s."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no answer")
                self.sock.settimeout(left)
            else:
                self.sock.settimeout(None)
            try:
                chunk = self.sock.recv(1 << 16)
            except socket.timeout:
                raise TimeoutError("no answer") from None
            if not chunk:
                return None
            self._buf += chunk
            if len(self._buf) > MAX_LINE:
                raise StandinError("control line too long")
        line, _, rest = bytes(self._buf).partition(b"\n")
        self._buf = bytearray(rest)
        return json.loads(line)


class StandinProcess:
    """A child ``python -m appliance.tapi.standin ROLE`` and its control channel (host side).

    ``extra`` socket pairs are handed to the child too (their child ends by
    fd number, in order); the host keeps the other ends in ``self.extra``.
    """

    def __init__(self, role: str, args: dict, extra: int = 0, *, seqpacket_extra: bool = True,
                 ready_timeout: float = 30.0) -> None:
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        kind = socket.SOCK_SEQPACKET if seqpacket_extra else socket.SOCK_STREAM
        pairs = [socket.socketpair(socket.AF_UNIX, kind) for _ in range(extra)]
        fds = [child.fileno()] + [c.fileno() for _, c in pairs]
        cmd = [sys.executable, "-m", "appliance.tapi.standin", role,
               "--fds", ",".join(map(str, fds)), "--args", json.dumps(args)]
        env = dict(os.environ)
        # the child imports this package as the host does, wherever the host runs from
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH")
                                    else "")
        self.proc = subprocess.Popen(cmd, pass_fds=fds, stdin=subprocess.DEVNULL, env=env)
        child.close()
        for _, c in pairs:
            c.close()
        self.extra = [h for h, _ in pairs]
        self.channel = Channel(host)
        self.role = role
        self._stopped = False
        try:
            hello = self.channel.recv(ready_timeout)
        except TimeoutError:
            self.stop()
            raise StandinError(f"{role}: the stand-in did not start within {ready_timeout} s") \
                from None
        if hello is None or not hello.get("ok"):
            self.stop()
            detail = "exited" if hello is None else hello.get("error")
            raise StandinError(f"{role}: the stand-in did not start: {detail}")
        self.hello = hello.get("result")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def call(self, op: str, answer_within: float = 10.0, **kw):
        """Request ``op``; its answer may take ``answer_within`` s (plus 5 s of slack)."""
        if self._stopped:
            raise StandinError(f"{self.role}: stopped")
        self.channel.send({"op": op, **kw})
        limit = answer_within + 5.0
        try:
            reply = self.channel.recv(limit)
        except TimeoutError:
            raise StandinError(f"{self.role}: no answer to {op!r} within {limit} s") from None
        if reply is None:
            raise StandinError(f"{self.role}: the stand-in exited (code {self.proc.poll()})")
        if not reply.get("ok"):
            raise StandinError(f"{self.role}: {op}: {reply.get('error')}")
        return reply.get("result")

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the child to stop; terminate, then kill it by its pid if it does not."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self.channel.send({"op": "stop"})
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(5.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5.0)
        for s in [self.channel.sock, *self.extra]:
            s.close()


# --- the child -------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the host dies (PR_SET_PDEATHSIG), besides the EOF."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def serve(channel: Channel, handlers: dict, on_stop) -> None:
    """Answer requests until ``stop`` or end of stream; a failing handler answers its error."""
    try:
        while True:
            req = channel.recv(None)
            if req is None or req.get("op") == "stop":
                break
            fn = handlers.get(req.get("op"))
            if fn is None:
                channel.send({"ok": False, "error": f"unknown op {req.get('op')!r}"})
                continue
            args = {k: v for k, v in req.items() if k != "op"}
            try:
                result = fn(**args)
            except Exception as exc:      # noqa: BLE001 — reported to the host, not fatal here
                channel.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
            else:
                channel.send({"ok": True, "result": result})
    finally:
        on_stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m appliance.tapi.standin")
    ap.add_argument("role", choices=("emulator", "gpio-audio"))
    ap.add_argument("--fds", required=True)
    ap.add_argument("--args", required=True)
    a = ap.parse_args(argv)
    _die_with_parent()
    socks = [socket.socket(fileno=int(fd)) for fd in a.fds.split(",")]
    channel = Channel(socks[0])
    args = json.loads(a.args)
    if a.role == "emulator":
        from appliance.tapi.emulator import child_main
    else:
        from appliance.tapi.gpio_emulator import child_main
    try:
        return child_main(channel, socks[1:], args)
    except Exception as exc:              # noqa: BLE001 — the host sees why it did not start
        try:
            channel.send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
        except OSError:
            pass
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
