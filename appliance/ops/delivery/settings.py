"""The delivery paths from the configuration's ``[alarms.syslog]``, ``[alarms.mail]`` and
``[alarms.snmp]`` tables (passed in as dicts by a front end).

Secrets — the SMTP password, the SNMP community and v3 keys — are read
from files named in the configuration (``*_file``, mode 0600 on the
appliance), never written in it, and never logged: the settings' ``repr``
leaves them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from pathlib import Path

from appliance.errors import ConfigError
from appliance.ops.alarms import Severity
from appliance.ops.delivery.digest import DailyDigest
from appliance.ops.delivery.mail import MailSender, MailSettings
from appliance.ops.delivery.snmp import SnmpSender, SnmpSettings
from appliance.ops.delivery.syslog import FACILITIES, SyslogSender, SyslogSettings

PATHS = ("syslog", "mail", "snmp")


@dataclass
class DeliveryPaths:
    senders: dict = field(default_factory=dict)        # name -> sender (outbox order)
    min_severity: dict = field(default_factory=dict)
    digest: DailyDigest | None = None

    @property
    def names(self) -> list[str]:
        return [*self.senders, *(["mail_digest"] if self.digest else [])]

    def test_targets(self) -> dict:
        """Every configured path for ``alarm test``: the mail sender once, digest or not."""
        out = dict(self.senders)
        if "mail" not in out and self.digest is not None:
            out["mail"] = self.digest.sender
        return out


def _path(base: Path, value) -> Path | None:
    if value in (None, ""):
        return None
    p = Path(str(value))
    return p if p.is_absolute() else base / p


def _secret(base: Path, table: dict, key: str, where: str) -> str:
    name = table.get(f"{key}_file")
    if not name:
        return ""
    p = _path(base, name)
    try:
        return p.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"[{where}] {key}_file を読めません / cannot read {p}: "
                          f"{exc.strerror}") from None


def _check(table: dict, allowed: set[str], where: str) -> None:
    unknown = set(table) - allowed
    if unknown:
        raise ConfigError(f"[{where}] 不明なキー / unknown keys: {', '.join(sorted(unknown))}")


def _port(table: dict, default: int, where: str) -> int:
    port = table.get("port", default)
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ConfigError(f"[{where}] port must be 1–65535")
    return port


def _severity(table: dict, where: str, default: str) -> str:
    value = str(table.get("min_severity", default))
    if value not in {s.value for s in Severity}:
        raise ConfigError(f"[{where}] min_severity is info, warning, error or critical")
    return value


def load_paths(alarms_table: dict | None, base: Path, now) -> DeliveryPaths:
    """Build the configured senders; ``base`` resolves relative file names (the config's dir)."""
    t = alarms_table or {}
    paths = DeliveryPaths()
    if isinstance(t.get("syslog"), dict):
        s, w = t["syslog"], "alarms.syslog"
        _check(s, {"host", "port", "ca_file", "server_name", "cert_file", "key_file",
                   "facility", "app_name", "min_severity"}, w)
        if not s.get("host"):
            raise ConfigError(f"[{w}] host is required")
        if s.get("facility", "local0") not in FACILITIES:
            raise ConfigError(f"[{w}] facility: one of {', '.join(FACILITIES)}")
        paths.senders["syslog"] = SyslogSender(SyslogSettings(
            str(s["host"]), _port(s, 6514, w), _path(base, s.get("ca_file")),
            s.get("server_name"), _path(base, s.get("cert_file")), _path(base, s.get("key_file")),
            s.get("facility", "local0"), s.get("app_name", "appliance")))
        paths.min_severity["syslog"] = _severity(s, w, "info")
    if isinstance(t.get("mail"), dict):
        m, w = t["mail"], "alarms.mail"
        _check(m, {"host", "port", "from", "to", "starttls", "ca_file", "username",
                   "password_file", "addressee", "mode", "digest_at", "min_severity"}, w)
        to = m.get("to")
        to = [to] if isinstance(to, str) else to
        if not m.get("host") or not m.get("from") or not to or not all(
                isinstance(a, str) and "@" in a for a in to):
            raise ConfigError(f"[{w}] host, from and to (addresses) are required")
        mode = m.get("mode", "each")
        if mode not in ("each", "digest", "both"):
            raise ConfigError(f"[{w}] mode is each, digest or both")
        try:
            digest_at = time.fromisoformat(str(m.get("digest_at", "08:30")))
        except ValueError:
            raise ConfigError(f"[{w}] digest_at is HH:MM (Japan time)") from None
        settings = MailSettings(
            str(m["host"]), str(m["from"]), tuple(to), _port(m, 25, w), bool(m.get("starttls")),
            _path(base, m.get("ca_file")), m.get("username"),
            _secret(base, m, "password", w) or None,
            str(m.get("addressee", "ご担当者 様")), mode, digest_at.strftime("%H:%M"),
            _severity(m, w, "warning"))
        sender = MailSender(settings, now)
        if mode in ("each", "both"):
            paths.senders["mail"] = sender
            paths.min_severity["mail"] = settings.min_severity
        if mode in ("digest", "both"):
            paths.digest = DailyDigest(sender, digest_at)
    if isinstance(t.get("snmp"), dict):
        n, w = t["snmp"], "alarms.snmp"
        _check(n, {"host", "port", "version", "notification", "community_file", "user",
                   "auth_protocol", "auth_key_file", "priv_protocol", "priv_key_file",
                   "engine_id", "min_severity"}, w)
        if not n.get("host"):
            raise ConfigError(f"[{w}] host is required")
        version = str(n.get("version", "2c"))
        try:
            paths.senders["snmp"] = SnmpSender(SnmpSettings(
                str(n["host"]), _port(n, 162, w), version, str(n.get("notification", "inform")),
                _secret(base, n, "community", w) or "public", str(n.get("user", "")),
                str(n.get("auth_protocol", "SHA")), _secret(base, n, "auth_key", w),
                str(n.get("priv_protocol", "AES")), _secret(base, n, "priv_key", w),
                str(n.get("engine_id", SnmpSettings.engine_id))))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        paths.min_severity["snmp"] = _severity(n, w, "info")
    return paths


def start_deliverer(catalog, alarms_table: dict | None, base: Path, *, now, monotonic,
                    site: str, host: str, registry=None, alarm_after_s: float = 300.0,
                    poll_s: float = 1.0):
    """A running :class:`Deliverer` for the configured paths, or None when none is configured."""
    from appliance.ops.delivery.outbox import Deliverer
    paths = load_paths(alarms_table, base, now)
    if not paths.names:
        return None
    return Deliverer(catalog, paths.senders, now=now, monotonic=monotonic, site=site, host=host,
                     registry=registry, min_severity=paths.min_severity, digest=paths.digest,
                     alarm_after_s=alarm_after_s, poll_s=poll_s).start()
