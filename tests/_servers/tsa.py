"""A real RFC 3161 time-stamping authority for tests, in its own process.

``TsaServer(dir)`` makes a test CA and a TSA certificate
(``extendedKeyUsage=critical,timeStamping``) with OpenSSL, writes the
``[tsa]`` configuration, starts tsa_http.py as a child process and stops it
by its own process id. ``ca_file`` is what the appliance's ``[timestamp]
ca_file`` and ``openssl ts -verify -CAfile`` take; ``refuse()`` / ``accept()``
make it unavailable and back.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests._servers.lifetime import die_with_parent

HERE = Path(__file__).resolve().parent


def _openssl(*args, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "ca.key", "-out", "ca.pem", "-days", "3650", "-subj",
             "/CN=Test TSA Root/O=Test", cwd=d)
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "tsa.key", "-out", "tsa.csr", "-subj", "/CN=Test TSA/O=Test", cwd=d)
    (d / "ext.cnf").write_text("extendedKeyUsage=critical,timeStamping\n"
                               "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "tsa.pem", "-days", "3650", "-extfile", "ext.cnf", cwd=d)
    (d / "serial").write_text("01\n")
    (d / "tsa.cnf").write_text(f"""[tsa]
default_tsa = tsa_config
[tsa_config]
dir = {d}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
""")


class TsaServer:
    def __init__(self, d: Path) -> None:
        self.dir = Path(d)
        make_ca(self.dir)
        self.ca_file = self.dir / "ca.pem"
        self.proc = subprocess.Popen([sys.executable, str(HERE / "tsa_http.py"), str(self.dir)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     preexec_fn=die_with_parent)
        line = self.proc.stdout.readline()          # bounded: the child prints it at once or dies
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError("the TSA did not start")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}/tsa"

    def refuse(self) -> None:
        (self.dir / "refuse").write_text("1")

    def accept(self) -> None:
        (self.dir / "refuse").unlink(missing_ok=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()
