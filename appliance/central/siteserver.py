"""The centre's listener for sites: HTTPS with mutual TLS, every refusal on the ledger.

Routes (JSON):

============================  ===========  =======================================
``GET  /v1/ca``               no cert      the city CA (the token names its fingerprint)
``POST /v1/enrol``            no cert      token + CSR → client certificate, city key
``GET  /v1/sites/S/state``    cert of S    stored position, ledger head, holds to apply
``POST /v1/sites/S/batch``    cert of S    a run of outbox items (appliance.central.ingest)
``POST /v1/sites/S/applied``  cert of S    holds and releases the site has applied
============================  ===========  =======================================

The TLS handshake is done here, per connection, in the connection's thread
(not by the socket server), so that a handshake the centre refuses — a
certificate the city CA did not issue, an expired one — is seen and put on
the city ledger with the peer's address, not only logged by a library. The
context asks for a client certificate but does not require one at the TLS
level: only the two enrolment routes work without one; every other request
without a certificate, with a superseded certificate (not the serial in
force for its site) or with another site's certificate is refused at the
HTTP level, on the ledger, before its body is read. Identical refusals from
one address are ledgered at most once a minute (with a count), so a flood
cannot fill the ledger.

Built on the standard library's ThreadingHTTPServer: the listener needs
control of the handshake that ASGI servers do not give, and sites are few
(10–50) with one connection each.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from appliance.central import enrolment, ingest
from appliance.central.ca import CityCA, EnrolError
from appliance.central.centre import Centre, parse_listen
from appliance.errors import ApplianceError, CatalogError
from appliance.ops.alarms import AlarmCode, AlarmRegistry

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
HANDSHAKE_TIMEOUT_S = 15
IDLE_TIMEOUT_S = 120
_ROUTE = re.compile(r"^/v1/sites/([a-z0-9][a-z0-9-]{0,31})/(state|batch|applied)$")


class RefusalLog:
    """Ledger a refusal, but the same (address, reason) at most once per ``every_s``."""

    def __init__(self, centre: Centre, every_s: float = 60.0) -> None:
        self.centre = centre
        self.every_s = every_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def note(self, peer: str, reason: str, actor: str | None = None, **detail) -> None:
        now = time.monotonic()
        key = (peer, reason)
        with self._lock:
            last, skipped = self._last.get(key, (-1e9, 0))
            if now - last < self.every_s:
                self._last[key] = (last, skipped + 1)
                return
            self._last[key] = (now, 0)
            if len(self._last) > 10_000:          # bounded
                self._last.clear()
        log.warning("refused %s: %s", peer, reason)
        ingest.ledger_refusal(self.centre, actor or f"peer:{peer}", reason, peer=peer,
                              also_refused_since_last_entry=skipped, **detail)
        try:
            with self.centre.catalog() as cat:
                AlarmRegistry(cat, self.centre.clock.now, actor="centre").raise_(
                    AlarmCode.UPLOAD_REFUSED, actor or peer, reason)
        except ApplianceError:
            log.exception("could not raise the refusal alarm")


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, centre: Centre, address: tuple[str, int]) -> None:
        self.centre = centre
        ca = CityCA(centre.dir.ca_dir)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(ca.server_cert, ca.server_key)
        ctx.load_verify_locations(cafile=str(ca.cert_path))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self.tls = ctx
        self.refusals = RefusalLog(centre)
        super().__init__(address, SiteHandler)

    def finish_request(self, request, client_address) -> None:
        peer = client_address[0]
        request.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            conn = self.tls.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            conn.do_handshake()
        except ssl.SSLError as exc:
            self.refusals.note(peer, "tls_handshake", tls=exc.reason or str(exc))
            return
        except OSError:
            return          # the peer went away
        conn.settimeout(IDLE_TIMEOUT_S)
        try:
            SiteHandler(conn, client_address, self)
        finally:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()


class SiteHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "acr-central"
    sys_version = ""

    def log_message(self, fmt, *args) -> None:       # no access log with bodies or numbers
        log.debug("%s %s", self.client_address[0], fmt % args)

    # --- answers ---------------------------------------------------------------
    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str, **extra) -> None:
        self._send(status, {"error": code, "message": message, **extra})

    def _body(self) -> dict | None:
        try:
            n = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._error(411, "length_required", "Content-Length が必要です / length required")
            self.close_connection = True
            return None
        if not 0 <= n <= MAX_BODY:
            self._error(413, "too_large", "送信内容が大きすぎます / request body too large")
            self.close_connection = True
            return None
        raw = self.rfile.read(n)
        try:
            doc = json.loads(raw)
        except ValueError:
            self.server.refusals.note(self.client_address[0], "malformed")
            self._error(400, "malformed", "JSON ではありません / not JSON")
            return None
        return doc if isinstance(doc, dict) else {}

    # --- who is asking ---------------------------------------------------------
    def _site_of_certificate(self) -> tuple[str | None, str | None]:
        cert = self.connection.getpeercert()
        if not cert:
            return None, None
        cn = next((v for rdn in cert.get("subject", ()) for k, v in rdn if k == "commonName"),
                  None)
        return cn, cert.get("serialNumber")

    def _authorised(self, site: str) -> bool:
        peer = self.client_address[0]
        cn, serial = self._site_of_certificate()
        server: SiteServer = self.server
        if cn is None:
            server.refusals.note(peer, "no_client_certificate", route=self.path)
            self._error(401, "no_certificate", "クライアント証明書がありません / a client "
                        "certificate is required")
            return False
        if cn != site:
            server.refusals.note(peer, "certificate_of_another_site", actor=f"site:{cn}",
                                 claimed_site=site, certificate_site=cn)
            self._error(403, "wrong_site", "他の拠点の証明書です / the certificate belongs to "
                        "another site")
            return False
        with server.centre.catalog() as cat:
            row = ingest.site_row(cat, site)
        if row is None or not row["cert_serial"] or int(row["cert_serial"], 16) != int(serial, 16):
            server.refusals.note(peer, "certificate_not_in_force", actor=f"site:{site}",
                                 serial=serial)
            self._error(403, "certificate_revoked", "この証明書は有効ではありません / this "
                        "certificate is not the one in force for the site")
            return False
        return True

    # --- routes ------------------------------------------------------------------
    def do_GET(self) -> None:
        try:
            if self.path == "/v1/ca":
                return self._send(200, {"ca": CityCA(self.server.centre.dir.ca_dir).ca_pem.decode()})
            m = _ROUTE.match(self.path)
            if m and m.group(2) == "state":
                if self._authorised(m.group(1)):
                    self._send(200, ingest.site_state(self.server.centre, m.group(1)))
                return
            self._error(404, "not_found", "not found")
        except CatalogError as exc:
            self._error(503, "unavailable", str(exc))

    def do_POST(self) -> None:
        try:
            self._post()
        except CatalogError as exc:
            # the database is away (restart): the site backs off and asks again
            self._error(503, "unavailable", str(exc))
        except ApplianceError as exc:
            self._error(400, "refused", str(exc))

    def _post(self) -> None:
        server: SiteServer = self.server
        if self.path == "/v1/enrol":
            doc = self._body()
            if doc is None:
                return
            try:
                answer = enrolment.enrol(server.centre, str(doc.get("token", "")),
                                         str(doc.get("csr", "")).encode(),
                                         self.client_address[0],
                                         {"appliance_archive_key": doc.get("archive_key")})
            except EnrolError as exc:
                return self._error(403, "enrol_refused", str(exc))
            return self._send(200, answer)
        m = _ROUTE.match(self.path)
        if not m or m.group(2) == "state":
            return self._error(404, "not_found", "not found")
        site = m.group(1)
        if not self._authorised(site):
            self.close_connection = True
            return
        doc = self._body()
        if doc is None:
            return
        if m.group(2) == "applied":
            ingest.holds_applied(server.centre, site, list(doc.get("holds") or []),
                                 list(doc.get("releases") or []))
            return self._send(200, {"ok": True})
        try:
            result = ingest.apply_batch(server.centre, site, doc)
        except ingest.Refused as exc:
            with server.centre.catalog() as cat:
                stored = ingest.site_row(cat, site)["outbox_seq"]
            try:
                with server.centre.catalog() as cat:
                    AlarmRegistry(cat, server.centre.clock.now, actor="centre").raise_(
                        AlarmCode.UPLOAD_REFUSED, f"site:{site}", exc.code)
            except ApplianceError:
                log.exception("could not raise the refusal alarm")
            return self._error(exc.status, exc.code, str(exc), stored_upto=stored)
        self._send(200, result.as_dict())


def serve_sites(centre: Centre, listen: str | None = None) -> SiteServer:
    """Bind the listener (``[central] sites_listen``); call ``serve_forever`` to run it."""
    return SiteServer(centre, parse_listen(listen or centre.settings.sites_listen))
