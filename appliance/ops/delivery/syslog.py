"""RFC 5424 syslog messages over TLS (RFC 5425) to the city's collector.

Written here rather than taken from a library: Python's ``SysLogHandler``
speaks the old BSD format over UDP/TCP without TLS, and the PyPI RFC 5424
handlers are logging handlers (fire and forget, no per-message result);
the outbox needs "this message went out, or it did not" for each message.
The format is a dozen lines of RFC 5424 §6, the transport Python's ``ssl``.

- PRI = facility × 8 + severity (RFC 5424 §6.2.1): facility ``local0`` (16)
  by default; critical → 2 (Critical), error → 3, warning → 4, info → 6;
  a clear is 5 (Notice), an acknowledgement and a test 6 (Informational).
- TIMESTAMP in UTC with milliseconds, HOSTNAME, APP-NAME ``appliance``,
  PROCID ``-``, MSGID ``ALARM_RAISED`` / ``ALARM_CLEARED`` / ``ALARM_ACK`` /
  ``ALARM_TEST``.
- STRUCTURED-DATA ``[alarm@32473 seq= event= code= severity= subject= site=]``
  (32473: the documentation PEN of RFC 5612, a placeholder until the
  company's own is assigned; see ``ENTERPRISE_PEN``); PARAM-VALUEs escape
  ``"``, ``\\`` and ``]`` (§6.3.3).
- MSG: UTF-8 with the BOM (§6.4), Japanese first.
- Framing: octet counting, ``LEN SP MSG`` (RFC 5425 §4.3).

Each message opens its own TLS connection (alarms are few), verifies the collector's
certificate (the city's CA, the name in ``server_name``), writes and closes
it. Syslog has no acknowledgement: a message counts as delivered once TLS
accepted it; one written in the instant the collector dies can be lost (the
collector sees ``seq`` gaps). Use the mail or an SNMP inform where proof of
receipt matters.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path

from appliance.ops.delivery.message import ENTERPRISE_PEN, AlarmMessage

FACILITIES = {"kern": 0, "user": 1, "daemon": 3, "auth": 4, "local0": 16, "local1": 17,
              "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22,
              "local7": 23}
_SEVERITY = {"critical": 2, "error": 3, "warning": 4, "info": 6}
_MSGID = {"raised": "ALARM_RAISED", "cleared": "ALARM_CLEARED", "acknowledged": "ALARM_ACK",
          "test": "ALARM_TEST"}


@dataclass(frozen=True)
class SyslogSettings:
    host: str
    port: int = 6514
    ca_file: Path | None = None        # the collector's CA; None = the system's
    server_name: str | None = None     # the name in the collector's certificate (default host)
    cert_file: Path | None = None      # our client certificate, when the collector asks
    key_file: Path | None = None
    facility: str = "local0"
    app_name: str = "appliance"
    timeout_s: float = 10.0


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _ascii_field(value: str, limit: int) -> str:
    """HOSTNAME, APP-NAME: printable US-ASCII without spaces (§6.2), or the NILVALUE."""
    out = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return out or "-"


def format_rfc5424(m: AlarmMessage, facility: str = "local0", app_name: str = "appliance") -> bytes:
    sev = _SEVERITY.get(m.severity, 3) if m.event == "raised" else (
        5 if m.event == "cleared" else 6)
    pri = FACILITIES[facility] * 8 + sev
    utc = m.at.astimezone(timezone.utc)
    stamp = utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    params = {"seq": str(m.seq), "event": m.event, "code": m.code, "severity": m.severity,
              "subject": m.subject, "site": m.site}
    sd = f"[alarm@{ENTERPRISE_PEN} " + " ".join(
        f'{k}="{_sd_escape(v)}"' for k, v in params.items()) + "]"
    head = (f"<{pri}>1 {stamp} {_ascii_field(m.host, 255)} {_ascii_field(app_name, 48)} - "
            f"{_MSGID.get(m.event, 'ALARM')} {sd} ")
    return head.encode("utf-8") + b"\xef\xbb\xbf" + m.one_line().encode("utf-8")


def frame(message: bytes) -> bytes:
    return str(len(message)).encode() + b" " + message


class SyslogSender:
    """Sends a batch of messages over one verified TLS connection; raises OSError on failure."""

    name = "syslog"

    def __init__(self, settings: SyslogSettings) -> None:
        if settings.facility not in FACILITIES:
            raise ValueError(f"unknown syslog facility {settings.facility!r}")
        self.settings = settings

    def _context(self) -> ssl.SSLContext:
        s = self.settings
        ctx = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if s.cert_file and s.key_file:
            ctx.load_cert_chain(str(s.cert_file), str(s.key_file))
        return ctx

    def send(self, m: AlarmMessage) -> None:
        s = self.settings
        data = frame(format_rfc5424(m, s.facility, s.app_name))
        with socket.create_connection((s.host, s.port), timeout=s.timeout_s) as raw:
            with self._context().wrap_socket(raw, server_hostname=s.server_name or s.host) as tls:
                tls.sendall(data)
                try:
                    tls.unwrap()        # close_notify: a clean end the collector can tell
                except (OSError, ValueError):
                    pass
