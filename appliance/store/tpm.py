"""A TPM 2.0, through Debian's tpm2-tools (the TSS's own command-line front end).

What the appliance asks of its TPM is small: a non-exportable ECDSA P-256
signing key at a persistent handle (the device key, signed capture
statements), and NV space that the TPM itself overwrites or frees (the day
and hold keys that make erasure certain on flash, ``daykeys.py``). Each
operation is one tpm2-tools command with ``TPM2TOOLS_TCTI`` naming the TPM:
``device:/dev/tpmrm0`` on the appliance (the kernel's resource manager), or
``swtpm:host=127.0.0.1,port=P`` for the software TPM the tests start. A
command takes a few milliseconds on swtpm and tens on a discrete TPM; the
appliance calls it at most once a second (signing) and once a day or per
erasure batch (NV), never from the capture thread.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from appliance.errors import KeyStoreError

#: the device signing key's persistent handle (owner hierarchy, TCG "platform" range left alone)
DEVICE_KEY_HANDLE = 0x81010010
#: NV attributes: owner-authorised read and write, so neither the web service nor a
#: technician (no owner authorisation at the console) reads them through another path
NV_ATTRIBUTES = "ownerread|ownerwrite|authread|authwrite"
#: a command that takes longer than this means the TPM is gone
TIMEOUT_S = 30.0


class TpmError(KeyStoreError):
    """The TPM refused a command, or is not there."""


class Tpm:
    def __init__(self, tcti: str) -> None:
        if not tcti or "\n" in tcti or len(tcti) > 256:
            raise TpmError(f"invalid TPM address (tcti) {tcti!r}")
        self.tcti = tcti

    def __repr__(self) -> str:
        return f"Tpm({self.tcti!r})"

    def _run(self, *args: str, data: bytes | None = None) -> bytes:
        env = dict(os.environ, TPM2TOOLS_TCTI=self.tcti)
        try:
            done = subprocess.run(list(args), input=data, capture_output=True, env=env,
                                  timeout=TIMEOUT_S, check=False)
        except FileNotFoundError:
            raise TpmError(f"{args[0]}: tpm2-tools が入っていません / tpm2-tools is not "
                           "installed") from None
        except subprocess.TimeoutExpired:
            raise TpmError(f"{args[0]}: TPM が応答しません / the TPM does not answer") from None
        if done.returncode != 0:
            last = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            raise TpmError(f"{args[0]}: TPM がコマンドを拒否しました / the TPM refused: {last}")
        return done.stdout

    # --- presence ----------------------------------------------------------------------
    def ping(self) -> None:
        """TpmError unless a TPM answers."""
        self._run("tpm2_getrandom", "8", "--hex")

    def random(self, n: int) -> bytes:
        if not 1 <= n <= 64:
            raise ValueError("1–64 bytes at a time")
        return self._run("tpm2_getrandom", str(n))

    # --- the device signing key ------------------------------------------------------------
    def has_persistent(self, handle: int) -> bool:
        out = self._run("tpm2_getcap", "handles-persistent").decode()
        return f"0x{handle:X}".lower() in out.lower()

    def create_signing_key(self, handle: int = DEVICE_KEY_HANDLE) -> None:
        """A fresh ECDSA P-256 key made inside the TPM (fixedtpm: it never leaves), persisted.

        Made under the owner's storage primary (tpm2_create draws it from the TPM's
        random generator: a new key, not one derived again from the seed), then
        made persistent. Transient objects are flushed after every step: without a
        resource manager (swtpm's socket, or /dev/tpm0) they would fill the TPM."""
        with tempfile.TemporaryDirectory(prefix="acr-tpm-") as d:
            p, pub, priv, key = (str(Path(d) / n) for n in ("p.ctx", "k.pub", "k.priv", "k.ctx"))
            try:
                self._run("tpm2_createprimary", "-Q", "-C", "o", "-g", "sha256", "-G", "ecc256",
                          "-c", p)
                self._run("tpm2_flushcontext", "-t")
                self._run("tpm2_create", "-Q", "-C", p, "-G", "ecc256:ecdsa-sha256", "-a",
                          "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign",
                          "-u", pub, "-r", priv)
                self._run("tpm2_flushcontext", "-t")
                self._run("tpm2_load", "-Q", "-C", p, "-u", pub, "-r", priv, "-c", key)
                self._run("tpm2_evictcontrol", "-Q", "-C", "o", "-c", key, f"0x{handle:x}")
            finally:
                self._run("tpm2_flushcontext", "-t")

    def public_pem(self, handle: int = DEVICE_KEY_HANDLE) -> bytes:
        with tempfile.TemporaryDirectory(prefix="acr-tpm-") as d:
            out = Path(d) / "pub.pem"
            self._run("tpm2_readpublic", "-Q", "-c", f"0x{handle:x}", "-f", "pem", "-o", str(out))
            return out.read_bytes()

    def sign(self, message: bytes, handle: int = DEVICE_KEY_HANDLE) -> bytes:
        """ECDSA P-256 over SHA-256(message), DER-encoded (what OpenSSL verifies)."""
        with tempfile.TemporaryDirectory(prefix="acr-tpm-") as d:
            msg, sig = Path(d) / "msg", Path(d) / "sig"
            msg.write_bytes(message)
            self._run("tpm2_sign", "-c", f"0x{handle:x}", "-g", "sha256", "-s", "ecdsa",
                      "-f", "plain", "-o", str(sig), str(msg))
            return sig.read_bytes()

    # --- NV space -------------------------------------------------------------------------------
    def nv_exists(self, index: int) -> bool:
        out = self._run("tpm2_getcap", "handles-nv-index").decode()
        return f"0x{index:X}".lower() in out.lower()

    def nv_define(self, index: int, size: int) -> None:
        self._run("tpm2_nvdefine", "-Q", f"0x{index:x}", "-C", "o", "-s", str(size),
                  "-a", NV_ATTRIBUTES)

    def nv_undefine(self, index: int) -> None:
        """Free the index: the TPM forgets its content."""
        self._run("tpm2_nvundefine", "-Q", f"0x{index:x}", "-C", "o")

    def nv_write(self, index: int, data: bytes, offset: int = 0) -> None:
        self._run("tpm2_nvwrite", "-Q", f"0x{index:x}", "-C", "o", "-i", "-",
                  "--offset", str(offset), data=data)

    def nv_read(self, index: int, size: int, offset: int = 0) -> bytes:
        out = self._run("tpm2_nvread", f"0x{index:x}", "-C", "o", "-s", str(size),
                        "--offset", str(offset))
        if len(out) != size:
            raise TpmError(f"NV 0x{index:x}: short read")
        return out
