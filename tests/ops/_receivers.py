"""The real receivers of alarm deliveries, each its own process on loopback.

Debian's rsyslog with TLS (gtls), an aiosmtpd SMTP server process writing a
Maildir, net-snmp's snmptrapd logging every notification. Each is started
by a fixture, owned by its process id, and stopped (SIGTERM, then SIGKILL)
by that fixture; ``stop()`` and ``start()`` again make a real network cut.
Certificates come from a throwaway test CA made with ``cryptography``.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SNMP_ENGINE_ID = "80001f8880c0ffee0001"
SNMP_USER, SNMP_AUTH, SNMP_PRIV = "alarmuser", "auth-pass-123", "priv-pass-123"


def free_port(kind=socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 20.0, every: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def _tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def make_ca(d: Path) -> dict[str, Path]:
    """A test CA and a server certificate for 127.0.0.1 / localhost."""
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test city CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = {"ca": d / "ca.pem", "cert": d / "server.pem", "key": d / "server.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
    paths["key"].chmod(0o600)
    return paths


class Receiver:
    """A server process we own: start, stop (by its pid), start again on the same port."""

    name = "receiver"

    def __init__(self, d: Path) -> None:
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log = d / "stderr.log"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> "Receiver":
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen(self.argv(), stdout=err, stderr=err,
                                         stdin=subprocess.DEVNULL, env=self.env(),
                                         start_new_session=True)
        try:
            wait_for(lambda: self.ready() or self.proc.poll() is not None, 20,
                     what=f"{self.name} to listen")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited: "
                                 f"{self.log.read_text(errors='replace')[-2000:]}")
        return self

    def env(self) -> dict:
        return dict(os.environ)

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)


class Rsyslog(Receiver):
    """rsyslogd -n with imtcp over gtls; each message written with its parsed RFC 5424 fields."""

    name = "rsyslogd"

    def __init__(self, d: Path, certs: dict[str, Path]) -> None:
        super().__init__(d)
        self.port = free_port()
        self.out = d / "messages.log"
        (d / "work").mkdir(exist_ok=True)
        # one line per message: the fields rsyslog's RFC 5424 parser found (protocol-version
        # is 1 only for a message parsed as RFC 5424), then the raw message
        (d / "rsyslog.conf").write_text(f'''
global(workDirectory="{d / 'work'}"
       DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="{certs['ca']}"
       DefaultNetstreamDriverCertFile="{certs['cert']}"
       DefaultNetstreamDriverKeyFile="{certs['key']}")
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1"
       StreamDriver.AuthMode="anon")
template(name="fields" type="list") {{
  constant(value="v=") property(name="protocol-version")
  constant(value="\\tpri=") property(name="pri")
  constant(value="\\tts=") property(name="timereported" dateFormat="rfc3339")
  constant(value="\\thost=") property(name="hostname")
  constant(value="\\tapp=") property(name="app-name")
  constant(value="\\tmsgid=") property(name="msgid")
  constant(value="\\tsd=") property(name="structured-data")
  constant(value="\\tmsg=") property(name="msg")
  constant(value="\\n")
}}
ruleset(name="collect") {{
  action(type="omfile" file="{self.out}" template="fields" flushOnTXEnd="on" asyncWriting="off")
}}
input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="collect")
''')

    def argv(self) -> list[str]:
        return ["/usr/sbin/rsyslogd", "-n", "-f", str(self.dir / "rsyslog.conf"),
                "-i", str(self.dir / "rsyslogd.pid")]

    def ready(self) -> bool:
        return _tcp_open(self.port)

    def messages(self) -> list[dict]:
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = dict(part.split("=", 1) for part in line.split("\t") if "=" in part)
            out.append(fields)
        return out

    def raw(self) -> bytes:
        return self.out.read_bytes() if self.out.exists() else b""


class SmtpServer(Receiver):
    """aiosmtpd's own command line in its own process, saving every mail to a Maildir."""

    name = "aiosmtpd"

    def __init__(self, d: Path) -> None:
        super().__init__(d)
        self.port = free_port()
        self.maildir = d / "Maildir"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
                "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)]

    def ready(self) -> bool:
        return _tcp_open(self.port)

    def files(self) -> list[Path]:
        new = self.maildir / "new"
        return sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns) if new.exists() else []

    def mails(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
                for p in self.files()]

    def raw(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.files())


class TrapReceiver(Receiver):
    """snmptrapd -f: v2c community ``public`` and a v3 USM user (SHA/AES), one line per
    notification: ``TRAP|<type, version>|<oid = value>\\t…``."""

    name = "snmptrapd"

    def __init__(self, d: Path) -> None:
        super().__init__(d)
        self.port = free_port(socket.SOCK_DGRAM)
        self.out = d / "traps.log"
        (d / "snmptrapd.conf").write_text(
            "authCommunity log public\n"
            f'createUser -e 0x{SNMP_ENGINE_ID} {SNMP_USER} SHA "{SNMP_AUTH}" AES "{SNMP_PRIV}"\n'
            f'createUser {SNMP_USER} SHA "{SNMP_AUTH}" AES "{SNMP_PRIV}"\n'
            f"authUser log {SNMP_USER} priv\n"
            "format2 TRAP|%P|%V\\t%v\\n\n")

    def argv(self) -> list[str]:
        return ["/usr/sbin/snmptrapd", "-f", "-A", "-C", "-c", str(self.dir / "snmptrapd.conf"),
                "-Lf", str(self.out), "-On", "-m", "", "-M", str(self.dir),
                "--persistentDir=" + str(self.dir / "persist"), "-p", str(self.dir / "pid"),
                f"udp:127.0.0.1:{self.port}"]

    def env(self) -> dict:
        return dict(os.environ, MIBS="", SNMPCONFPATH=str(self.dir))

    def ready(self) -> bool:
        return self.out.exists() and "NET-SNMP version" in self.out.read_text(errors="replace")

    def notifications(self) -> list[dict]:
        """[{kind, oid, vars: {oid: value text}}] in arrival order."""
        if not self.out.exists():
            return []
        text = self.out.read_text(encoding="utf-8", errors="replace")
        # values may span lines (long Hex-STRINGs); a record starts with TRAP|
        out = []
        for rec in text.split("TRAP|")[1:]:
            kind, _, rest = rec.partition("|")
            varbinds = {}
            for vb in rest.replace("\n", " ").split("\t"):
                oid, sep, value = vb.partition(" = ")
                if sep:
                    varbinds[oid.strip()] = value.strip()
            trap_oid = varbinds.get(".1.3.6.1.6.3.1.1.4.1.0", "").removeprefix("OID: ")
            out.append({"kind": kind, "oid": trap_oid, "vars": varbinds})
        return out

    def raw(self) -> bytes:
        return self.out.read_bytes() if self.out.exists() else b""


def snmp_text(value: str) -> str:
    """A varbind's value as text: ``STRING: "…"`` or ``Hex-STRING: E3 82 …`` (UTF-8)."""
    if value.startswith("STRING: "):
        return value[8:].strip().strip('"')
    if value.startswith("Hex-STRING: "):
        return bytes.fromhex(value[12:].replace(" ", "")).decode("utf-8", errors="replace")
    return value


class Ups:
    """NUT: the dummy-ups driver reading a .dev file the test rewrites, and upsd serving it on
    a loopback port — two processes of our own, each stopped by its pid."""

    name = "rack"

    def __init__(self, d: Path) -> None:
        self.dir = d
        (d / "state").mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dev = d / "rack.dev"
        self.set("OL", 100)
        (d / "ups.conf").write_text(f"[{self.name}]\n  driver = dummy-ups\n  port = {self.dev}\n"
                                    "  mode = dummy-once\n  desc = \"test UPS\"\n")
        (d / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n")
        (d / "upsd.users").write_text("")
        (d / "nut.conf").write_text("MODE=standalone\n")
        for f in ("ups.conf", "upsd.conf", "upsd.users", "nut.conf"):
            (d / f).chmod(0o640)
        self.driver = _Proc(d, "dummy-ups", ["/lib/nut/dummy-ups", "-a", self.name, "-u",
                                             "root", "-F"], self.env(),
                            lambda: any((d / "state").glob("dummy-ups-*")))
        self.upsd = _Proc(d, "upsd", ["/lib/nut/upsd", "-u", "root", "-F"], self.env(),
                          lambda: _tcp_open(self.port))

    @property
    def address(self) -> str:
        return f"{self.name}@127.0.0.1:{self.port}"

    def env(self) -> dict:
        s = str(self.dir / "state")
        return dict(os.environ, NUT_CONFPATH=str(self.dir), NUT_STATEPATH=s, NUT_ALTPIDPATH=s)

    def set(self, status: str, charge: float) -> None:
        """What the UPS reports; the driver re-reads the file when it changes."""
        tmp = self.dev.with_suffix(".tmp")
        tmp.write_text(f"ups.status: {status}\nbattery.charge: {charge}\n"
                       f"battery.runtime: {int(charge * 18)}\n")
        tmp.replace(self.dev)

    def status(self) -> str:
        r = subprocess.run(["/usr/bin/upsc", self.address, "ups.status"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip()

    def start(self) -> "Ups":
        self.driver.start()
        self.upsd.start()
        wait_for(lambda: self.status() == "OL", 20, what="upsd to serve the UPS")
        return self

    def stop(self) -> None:
        self.upsd.stop()
        self.driver.stop()


class _Proc(Receiver):
    def __init__(self, d: Path, name: str, argv: list[str], env: dict, ready) -> None:
        self.name = name
        self._argv, self._env, self._ready = argv, env, ready
        super().__init__(d)
        self.log = d / f"{name}.log"

    def argv(self) -> list[str]:
        return self._argv

    def env(self) -> dict:
        return self._env

    def ready(self) -> bool:
        return self._ready()


class Chrony:
    """A real chronyd that never sets the clock (-x): it follows a second chronyd serving a
    local reference on loopback (or no server at all), with its own command port for chronyc.
    ``offset`` shifts what the follower measures (chrony's ``server … offset``), so a clock
    off its reference can be shown without touching the machine's clock."""

    def __init__(self, d: Path, *, serve: bool = True, offset: float = 0.0) -> None:
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.ntp_port = free_port(socket.SOCK_DGRAM)
        self.cmd_port = free_port(socket.SOCK_DGRAM)
        self.procs: list[_Proc] = []
        if serve:
            (d / "server.conf").write_text(
                f"local stratum 8\nallow 127.0.0.1\nport {self.ntp_port}\ncmdport 0\n"
                f"bindaddress 127.0.0.1\npidfile {d / 'server.pid'}\n"
                f"driftfile {d / 'server.drift'}\n")
            self.procs.append(_Proc(d, "chronyd-server", [
                "/usr/sbin/chronyd", "-x", "-d", "-f", str(d / "server.conf")], dict(os.environ),
                lambda: "starting" in (d / "chronyd-server.log").read_text(errors="replace")))
        server = (f"server 127.0.0.1 port {self.ntp_port} iburst minpoll -4 maxpoll -4"
                  f" offset {offset}\n") if serve else ""
        (d / "client.conf").write_text(
            f"{server}port 0\ncmdport {self.cmd_port}\nbindcmdaddress 127.0.0.1\n"
            f"cmdallow 127.0.0.1\npidfile {d / 'client.pid'}\ndriftfile {d / 'client.drift'}\n")
        self.procs.append(_Proc(d, "chronyd-client", [
            "/usr/sbin/chronyd", "-x", "-d", "-f", str(d / "client.conf")], dict(os.environ),
            lambda: self.tracking() != ""))

    def tracking(self, csv: bool = True) -> str:
        r = subprocess.run(["/usr/bin/chronyc", "-h", "127.0.0.1", "-p", str(self.cmd_port),
                            *(["-c"] if csv else []), "-n", "tracking"],
                           capture_output=True, text=True, timeout=10)
        return r.stdout.strip() if r.returncode == 0 else ""

    def start(self) -> "Chrony":
        for p in self.procs:
            p.start()
        return self

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.stop()
