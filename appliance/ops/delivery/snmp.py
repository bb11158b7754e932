"""SNMP notifications (v2c and v3 USM) with the objects of docs/APPLIANCE-ALARM-MIB.txt.

pysnmp (LeXtudio's maintained line) builds and sends them; it does v2c
communities and v3 USM (SHA/AES) without a C library. Two kinds
(``notification``):

- ``inform`` (default): the receiver answers each one; pysnmp retries, and
  an unanswered inform is a failed delivery that the outbox retries later.
  Survives a network cut: informs raised during it arrive after it, in order.
- ``trap``: fire and forget (UDP). Counted delivered once sent: a trap sent
  into a network cut is lost. Use it only where the manager cannot take
  informs.

OIDs under enterprises.32473 (RFC 5612's documentation number, a PLACEHOLDER
until the company's PEN is assigned): ``.1.0.N`` notifications
(1 raised, 2 cleared, 3 acknowledged, 4 test), ``.1.1.N`` objects (1 seq,
2 code, 3 severity, 4 subject, 5 text UTF-8, 6 time ISO 8601 UTC, 7 site,
8 event). v3 traps are sent by an authoritative engine with a fixed
``engine_id`` the receiver is configured with.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from appliance.ops.delivery.message import ENTERPRISE_PEN, AlarmMessage

ROOT = f"1.3.6.1.4.1.{ENTERPRISE_PEN}.1"
NOTIFICATIONS = {"raised": f"{ROOT}.0.1", "cleared": f"{ROOT}.0.2",
                 "acknowledged": f"{ROOT}.0.3", "test": f"{ROOT}.0.4"}
OBJECTS = {"seq": f"{ROOT}.1.1", "code": f"{ROOT}.1.2", "severity": f"{ROOT}.1.3",
           "subject": f"{ROOT}.1.4", "text": f"{ROOT}.1.5", "time": f"{ROOT}.1.6",
           "site": f"{ROOT}.1.7", "event": f"{ROOT}.1.8"}
SEVERITY_VALUES = {"info": 1, "warning": 2, "error": 3, "critical": 4}


@dataclass(frozen=True)
class SnmpSettings:
    host: str
    port: int = 162
    version: str = "2c"                    # 2c | 3
    notification: str = "inform"           # inform | trap
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: str = "SHA"             # SHA | SHA256 | MD5
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "AES"             # AES | AES256 | DES | none
    priv_key: str = field(default="", repr=False)
    engine_id: str = "80001f8880c0ffee0001"   # hex; the receiver's createUser -e for v3 traps
    timeout_s: float = 3.0
    retries: int = 2


class SnmpSender:
    name = "snmp"

    def __init__(self, settings: SnmpSettings) -> None:
        if settings.version not in ("2c", "3") or settings.notification not in ("inform", "trap"):
            raise ValueError("[alarms.snmp] version is 2c or 3, notification inform or trap")
        if settings.version == "3" and not (settings.user and settings.auth_key):
            raise ValueError("[alarms.snmp] version 3 needs user and auth_key_file")
        self.settings = settings

    def _auth(self, hl):
        s = self.settings
        if s.version == "2c":
            return hl.CommunityData(s.community, mpModel=1)
        auth = {"SHA": hl.usmHMACSHAAuthProtocol, "SHA256": hl.usmHMAC192SHA256AuthProtocol,
                "MD5": hl.usmHMACMD5AuthProtocol}[s.auth_protocol]
        priv = {"AES": hl.usmAesCfb128Protocol, "AES256": hl.usmAesCfb256Protocol,
                "DES": hl.usmDESPrivProtocol, "none": hl.usmNoPrivProtocol}[s.priv_protocol]
        return hl.UsmUserData(s.user, s.auth_key, s.priv_key or None, authProtocol=auth,
                              privProtocol=priv)

    async def _send(self, m: AlarmMessage) -> None:
        from pysnmp.hlapi.v3arch import asyncio as hl
        s = self.settings
        engine = hl.SnmpEngine(snmpEngineID=hl.OctetString(hexValue=s.engine_id))
        try:
            target = await hl.UdpTransportTarget.create((s.host, s.port), timeout=s.timeout_s,
                                                        retries=s.retries)
            notification = hl.NotificationType(hl.ObjectIdentity(NOTIFICATIONS[m.event]))
            notification = notification.add_varbinds(
                (OBJECTS["seq"], hl.Unsigned32(m.seq % 2**32)),
                (OBJECTS["code"], hl.OctetString(m.code)),
                (OBJECTS["severity"], hl.Integer32(SEVERITY_VALUES.get(m.severity, 3))),
                (OBJECTS["subject"], hl.OctetString(m.subject.encode("utf-8"))),
                (OBJECTS["text"], hl.OctetString(m.one_line().encode("utf-8")[:1000])),
                (OBJECTS["time"], hl.OctetString(m.at.isoformat(timespec="seconds"))),
                (OBJECTS["site"], hl.OctetString(m.site.encode("utf-8"))),
                (OBJECTS["event"], hl.OctetString(m.event)))
            error, status, _index, _binds = await hl.send_notification(
                engine, self._auth(hl), target, hl.ContextData(), s.notification, notification)
        finally:
            engine.close_dispatcher()
        if error:
            raise OSError(f"SNMP {s.notification}: {error}")
        if status:
            raise OSError(f"SNMP {s.notification}: {status.prettyPrint()}")

    def send(self, m: AlarmMessage) -> None:
        asyncio.run(self._send(m))
