"""The systemd units pass `systemd-analyze verify` and carry the hardening issue 8 asks for."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
APPLIANCE = ROOT / ".venv" / "bin" / "appliance"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


def unit(name: str) -> configparser.ConfigParser:
    p = configparser.ConfigParser(strict=False, interpolation=None)
    p.optionxform = str
    p.read(UNITS / name, encoding="utf-8")
    return p


def verify(tmp_path: Path, files: list[Path]) -> str:
    """Verify copies whose ExecStart points at this checkout's appliance (the appliance
    image installs it under /opt/appliance, which does not exist on a build machine)."""
    out = []
    for f in files:
        rel = f.relative_to(UNITS)
        dest = tmp_path / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(f.read_text("utf-8").replace("/opt/appliance/.venv/bin/appliance",
                                                     str(APPLIANCE)), "utf-8")
        out.append(dest)
    r = subprocess.run([ANALYZE, "verify", *[str(p) for p in out if p.suffix in
                                              (".service", ".timer")]],
                       capture_output=True, text=True, timeout=60,
                       env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"})
    return r.stdout + r.stderr


@needs_analyze
def test_the_checker_reports_a_bad_unit(tmp_path):
    (tmp_path / "bad.service").write_text("[Service]\nType=notiffy\nExecStart=/bin/true\n")
    assert "notiffy" in subprocess.run([ANALYZE, "verify", str(tmp_path / "bad.service")],
                                       capture_output=True, text=True, timeout=60).stderr


@needs_analyze
def test_units_verify_cleanly(tmp_path):
    files = sorted(UNITS.glob("*.service")) + sorted(UNITS.glob("*.timer"))
    assert {f.name for f in files} >= {"appliance-recorder.service", "appliance-web.service",
                                       "appliance-retention.service", "appliance-retention.timer"}
    assert verify(tmp_path, files) == ""


@needs_analyze
def test_console_getty_drop_in_verifies(tmp_path):
    getty = Path("/lib/systemd/system/serial-getty@.service")
    if not getty.exists():
        pytest.skip("no serial-getty@.service on this machine")
    (tmp_path / "serial-getty@ttyS0.service").write_text(getty.read_text())
    drop = UNITS / "serial-getty@ttyS0.service.d" / "appliance.conf"
    d = tmp_path / "serial-getty@ttyS0.service.d"
    d.mkdir()
    (d / "appliance.conf").write_text(drop.read_text("utf-8"))
    r = subprocess.run([ANALYZE, "verify", str(tmp_path / "serial-getty@ttyS0.service")],
                       capture_output=True, text=True, timeout=60,
                       env={"SYSTEMD_UNIT_PATH": f"{tmp_path}:", "PATH": "/usr/bin:/bin"})
    assert (r.stdout + r.stderr) == ""
    assert "115200" in drop.read_text() and "vt100" in drop.read_text()


def test_recorder_is_a_notify_service_with_a_watchdog_and_hardening():
    s = unit("appliance-recorder.service")["Service"]
    assert s["Type"] == "notify" and s["Restart"] == "always"
    assert s["WatchdogSec"].rstrip("s").isdigit() and 5 <= int(s["WatchdogSec"].rstrip("s")) <= 120
    assert s["ProtectSystem"] == "strict" and s["PrivateTmp"] == "yes"
    assert s["NoNewPrivileges"] == "yes" and s["User"] == "appliance-rec"
    assert set(s["SupplementaryGroups"].split()) == {"audio", "dialout", "gpio"}
    assert "keys/wraps.json" in s["InaccessiblePaths"]


def test_every_service_has_its_own_user_and_hardening():
    for name in ("appliance-web.service", "appliance-retention.service"):
        s = unit(name)["Service"]
        assert s["User"] not in ("root", "") and s["ProtectSystem"] == "strict", name
        assert s["NoNewPrivileges"] == "yes" and s["PrivateTmp"] == "yes", name
    assert unit("appliance-web.service")["Service"]["User"] != "appliance-rec"
