"""A time-stamping authority over HTTP: OpenSSL's ``ts -reply`` behind a small server.

Run as its own process by tests/_servers/tsa.py::TsaServer:
``python tsa_http.py CONFIG_DIR``. It prints ``PORT <n>`` once listening on
127.0.0.1, answers ``POST`` ``application/timestamp-query`` with
``application/timestamp-reply`` made by ``openssl ts -reply`` (a real
RFC 3161 TSA with a test CA: no canned tokens), and exits on SIGTERM.
Every reply is bounded in time (30 s) and size (queries over 64 kB refused).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONF = Path(sys.argv[1])


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 — http.server's name
        n = int(self.headers.get("Content-Length", "0") or 0)
        if self.headers.get("Content-Type") != "application/timestamp-query" or not 0 < n <= 65536:
            self.send_error(400, "not a time-stamp query")
            return
        query = self.rfile.read(n)
        if (CONF / "refuse").exists():      # the test makes the TSA unavailable
            self.send_error(503, "unavailable")
            return
        with tempfile.TemporaryDirectory() as d:
            q, r = Path(d) / "q.tsq", Path(d) / "r.tsr"
            q.write_bytes(query)
            done = subprocess.run(["openssl", "ts", "-reply", "-config", str(CONF / "tsa.cnf"),
                                   "-queryfile", str(q), "-out", str(r)],
                                  capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                self.send_error(500, "openssl ts -reply failed")
                return
            body = r.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):   # quiet
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    import signal
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
