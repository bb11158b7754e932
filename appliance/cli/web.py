"""``appliance web``: the staff LAN service (issue 7).

HTTPS by default, with the city's certificate (``[web] certificate`` and
``private_key``) or one generated at first start under ``DATA_DIR/web/``.
``--http`` serves plain HTTP and is refused unless the address is a loopback
one (tests and the demo): cookies then lose their Secure flag, which is only
acceptable where nothing leaves the machine.
"""

from __future__ import annotations

import ipaddress
import logging

from appliance.clock import SystemClock
from appliance.errors import ConfigError

log = logging.getLogger("appliance.web")

DEFAULT_LISTEN = "0.0.0.0:8443"


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--listen は HOST:PORT / --listen takes HOST:PORT, not {text!r}")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_web(args) -> int:
    import uvicorn

    from appliance.web import WebContext, create_app
    from appliance.web.tls import ensure_self_signed

    host, port = parse_listen(args.listen)
    if args.http and not is_loopback(host):
        raise ConfigError("--http (暗号化なし) はループバックアドレスでのみ使えます / --http is "
                          "refused unless HOST is a loopback address (127.0.0.1, ::1)")
    clock = SystemClock()
    demo = None
    if args.demo_login_file:
        demo = args.demo_login_file.read_text(encoding="utf-8").strip()[:200]
    ctx = WebContext.load(args.data_dir, args.config, clock=clock, secure_cookies=not args.http,
                          demo_login=demo)
    tls = {}
    if not args.http:
        s = ctx.settings
        if s.certificate and s.private_key:
            cert, key = s.certificate, s.private_key
        else:
            cert, key = ensure_self_signed(ctx.datadir.root / "web", clock.now())
        tls = {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    ops = start_web_operations(ctx)
    scheme = "http" if args.http else "https"
    shown = f"[{host}]" if ":" in host else host
    print(f"職員サービス / staff service: {scheme}://{shown}:{port}/", flush=True)
    # access logs carry query strings (a searched number): keep them off
    # log_config=None: uvicorn's lines go through the appliance's one formatter
    # (Japan time, numbers masked); proxy headers only from configured proxies
    app = create_app(ctx)
    app.state.recorder_watch = ops.watch
    try:
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning",
                    log_config=None, server_header=False, **ctx.settings.server_options(), **tls)
    finally:
        ops.close()
    return 0


class WebOperations:
    """Beside the staff service: the recorder watch and an alarm deliverer, each with its
    own catalog connection (their threads write alarms and cursors)."""

    def __init__(self, ctx) -> None:
        import socket

        from appliance.ops.alarms import AlarmRegistry
        from appliance.ops.delivery import start_deliverer
        from appliance.ops.monitor import AlarmSettings
        from appliance.ops.status import live_status
        from appliance.ops.watch import RecorderWatch

        now, mono = ctx.clock.now, ctx.clock.monotonic
        settings = AlarmSettings.from_config(ctx.config.raw.get("alarms"))
        self.catalogs = [ctx.datadir.open_catalog(now()), ctx.datadir.open_catalog(now())]
        registry = AlarmRegistry(self.catalogs[0], now, actor="web")
        root = ctx.datadir.root
        self.watch = RecorderWatch(
            registry, lambda: live_status(root, timeout=2.0) is not None, mono,
            silent_s=settings.recorder_silent_s, check_s=settings.recorder_check_s).start()
        base = ctx.config.source.parent if ctx.config.source is not None else root
        self.deliverer = start_deliverer(
            self.catalogs[1], ctx.config.raw.get("alarms"), base, now=now, monotonic=mono,
            site=ctx.config.site.name, host=socket.gethostname(),
            registry=AlarmRegistry(self.catalogs[1], now, actor="web"),
            alarm_after_s=settings.delivery_alarm_s)

    def close(self) -> None:
        self.watch.stop()
        if self.deliverer is not None:
            self.deliverer.stop()
        for c in self.catalogs:
            c.close()


def start_web_operations(ctx) -> WebOperations:
    return WebOperations(ctx)


def register(sub) -> None:
    from pathlib import Path

    p = sub.add_parser("web", help="職員用 LAN サービス (HTTPS) / the staff LAN service: search, "
                       "listen, holds, disclosure requests, exports, ledger")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                   help=f"待ち受けアドレス / address to listen on (default {DEFAULT_LISTEN})")
    p.add_argument("--http", action="store_true",
                   help="暗号化なし (ループバックのみ: 試験・デモ用) / plain HTTP, loopback only "
                        "(tests and the demo)")
    p.add_argument("--demo-login-file", type=Path, help="デモ用: ログイン画面に表示する案内 / "
                   "demo only: a line shown on the login page (never on a real site)")
    p.set_defaults(func=cmd_web)
