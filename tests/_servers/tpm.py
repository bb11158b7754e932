"""A software TPM 2.0 (Debian's swtpm) for tests, in its own process.

``SwTpm(dir)`` starts ``swtpm socket --tpm2`` on two free loopback ports
with its state in ``dir/state`` (absolute: swtpm changes directory), and
stops it by its own process id. ``tcti`` is what the appliance's ``[tpm]
tcti`` and ``TPM2TOOLS_TCTI`` take. The state is the TPM: a test of flash
remnants copies the data directory, never this.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests._servers.lifetime import die_with_parent


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000:
            with socket.socket() as s2:
                try:
                    s2.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no free port pair")


class SwTpm:
    def __init__(self, d: Path) -> None:
        self.dir = Path(d).resolve()
        state = self.dir / "state"
        state.mkdir(parents=True, exist_ok=True)
        self.port = _free_port_pair()
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={self.port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={self.port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.tcti = f"swtpm:host=127.0.0.1,port={self.port}"
        deadline = time.monotonic() + 20
        while True:        # bounded wait for the TPM to answer
            done = subprocess.run(["tpm2_getrandom", "4", "--hex"], capture_output=True,
                                  env=dict(os.environ, TPM2TOOLS_TCTI=self.tcti), timeout=20)
            if done.returncode == 0:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("swtpm did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
