"""The city CA: the centre's server certificate and each site's client certificate.

Made at ``appliance central init`` (EC P-256, ``cryptography``). The CA
signs exactly two kinds of certificate: the centre's server certificate
(its ``public_host`` as DNS name or IP, plus localhost) and, at enrolment, a
site's client certificate whose common name is the site code. The site's
private key never leaves the appliance (it sends a CSR). The centre keeps
the serial in force per site, so a certificate superseded by a new
enrolment is refused even though the CA signed it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.errors import ApplianceError
from appliance.store.keystore import atomic_write

CA_DAYS = 20 * 365
LEAF_DAYS = 5 * 365
ORG = "松本市 通話記録 / Matsumoto City call records"


class EnrolError(ApplianceError, ValueError):
    """An enrolment that cannot go ahead (bad token, bad request, wrong centre)."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem_key(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def write_key(path: Path, key) -> None:
    atomic_write(path, _pem_key(key), 0o600)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate (DER), hex."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class CityCA:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.key_path = root / "ca.key"
        self.cert_path = root / "ca.pem"
        self.server_key = root / "server.key"
        self.server_cert = root / "server.pem"

    @property
    def exists(self) -> bool:
        return self.cert_path.exists()

    def create(self, public_host: str, now: dt.datetime) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        key = new_key()
        name = _name("通話記録センター CA / city archive CA")
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=CA_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .sign(key, hashes.SHA256()))
        write_key(self.key_path, key)
        atomic_write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        self.issue_server(public_host, now)

    def _ca(self):
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), None)
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        return key, cert

    @property
    def ca_pem(self) -> bytes:
        return self.cert_path.read_bytes()

    def issue_server(self, public_host: str, now: dt.datetime) -> None:
        ca_key, ca_cert = self._ca()
        key = new_key()
        names: list[x509.GeneralName] = [x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(public_host)))
        except ValueError:
            if public_host != "localhost":
                names.append(x509.DNSName(public_host))
        cert = (x509.CertificateBuilder().subject_name(_name(public_host))
                .issuer_name(ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        write_key(self.server_key, key)
        atomic_write(self.server_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue_client(self, site: str, csr_pem: bytes, now: dt.datetime) -> tuple[bytes, str]:
        """Sign a site's CSR with CN = site code; returns (certificate PEM, serial hex)."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise EnrolError("証明書署名要求が不正です / malformed certificate signing request"
                             ) from None
        if not csr.is_signature_valid:
            raise EnrolError("証明書署名要求の署名が不正です / the CSR's signature is invalid")
        if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
            raise EnrolError("EC P-256 の鍵が必要です / the site key must be EC P-256")
        ca_key, ca_cert = self._ca()
        serial = x509.random_serial_number()
        cert = (x509.CertificateBuilder().subject_name(_name(site))
                .issuer_name(ca_cert.subject).public_key(csr.public_key())
                .serial_number(serial)
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert.public_bytes(serialization.Encoding.PEM), format(serial, "x")


def make_csr(key, site_hint: str) -> bytes:
    csr = (x509.CertificateSigningRequestBuilder().subject_name(_name(site_hint))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def check_signed_by(cert_pem: bytes, ca_pem: bytes) -> None:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise EnrolError("センターの証明書が市の CA の発行ではありません / the certificate is not "
                         "issued by the city CA") from None
