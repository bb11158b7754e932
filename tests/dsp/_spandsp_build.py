"""Compiles our small C bridges to Debian's libspandsp (the independent reference)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD = HERE.parent / ".build"


class SpandspUnavailable(RuntimeError):
    pass


def _flags() -> list[str]:
    try:
        out = subprocess.run(["pkg-config", "--cflags", "--libs", "spandsp"],
                             capture_output=True, text=True, check=True).stdout.split()
        return out or ["-lspandsp"]
    except (OSError, subprocess.CalledProcessError):
        return ["-lspandsp"]


@lru_cache(maxsize=None)
def build(name: str) -> Path:
    """Compile tests/dsp/NAME.c if its binary is missing or stale; return the binary."""
    source, binary = HERE / f"{name}.c", BUILD / name
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    if shutil.which("gcc") is None:
        raise SpandspUnavailable("gcc is missing (tools/bootstrap.sh test installs it)")
    BUILD.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=BUILD, prefix=f".{name}.")
    os.close(fd)
    proc = subprocess.run(["gcc", "-O2", "-Wall", "-o", tmp, str(source), *_flags(), "-lm"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        os.unlink(tmp)
        raise SpandspUnavailable(f"cannot build the spandsp helper {name}:\n{proc.stderr}")
    os.replace(tmp, binary)          # atomic: parallel sessions never see half a binary
    return binary
