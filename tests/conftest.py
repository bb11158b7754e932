"""Shared fixtures: a fresh data directory, the CLI in-process, speech-like audio."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from appliance.cli import main as cli_main

PASSWORD = "kanri-pass-1"


@pytest.fixture
def run_cli(capsys):
    """Run ``appliance ARGS`` in-process; returns (exit code, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        code = cli_main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def password_file(tmp_path) -> Path:
    p = tmp_path / "manager.pw"
    p.write_text(PASSWORD + "\n")
    return p


@pytest.fixture
def datadir(tmp_path, run_cli, password_file) -> Path:
    """An initialised data directory with manager 'kacho'."""
    d = tmp_path / "data"
    code, out, err = run_cli("--data-dir", d, "init", "--manager", "kacho",
                             "--password-file", password_file,
                             "--recovery-key-file", tmp_path / "recovery.txt")
    assert code == 0, err
    return d


@pytest.fixture
def staff(password_file):
    """Credentials of the manager created by the datadir fixture."""
    return ["--user", "kacho", "--password-file", str(password_file)]


def _run_subprocess(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture
def run_subprocess():
    """The real command in its own process (exit codes, no traceback)."""
    return _run_subprocess


@pytest.fixture(scope="session")
def speech_8k(tmp_path_factory) -> np.ndarray:
    """About 6 s of real synthetic speech (espeak-ng, Japanese), 8 kHz int16."""
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.fail("espeak-ng and sox are required (tools/bootstrap.sh test installs them)")
    d = tmp_path_factory.mktemp("speech")
    raw, out = d / "raw.wav", d / "speech8k.wav"
    subprocess.run(["espeak-ng", "-v", "ja", "-s", "160", "-w", str(raw),
                    "こちらは松本市役所です。通話を録音しております。"], check=True, timeout=60)
    subprocess.run(["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(out),
                    "trim", "0", "6"], check=True, timeout=60)
    with wave.open(str(out)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return x[: len(x) // 160 * 160].copy()
