"""First boot from the serial console: the manager is created there, once (issue 10 item 3)."""

from __future__ import annotations

import json
import re
import subprocess
import sys


def console(data_dir, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "appliance", "--data-dir", str(data_dir),
                           "console", "--bin-dir", "/nonexistent"],
                          input=text, capture_output=True, text=True, timeout=120)


def test_init_from_the_console_creates_the_manager_once(tmp_path, run_cli):
    d = tmp_path / "data"
    res = console(d, "init\nkacho\nkanri-pass-1\nkanri-pass-1\nexit\n")
    assert res.returncode == 0, res.stderr
    assert "'init'" in res.stdout                       # the banner says what to do
    key = re.search(r"RECOVERY KEY.*\n\s+([A-Z2-7-]{60,})", res.stdout).group(1)
    assert "kanri-pass-1" not in res.stdout             # the password is never echoed back
    pw = tmp_path / "pw"
    pw.write_text("kanri-pass-1\n")
    code, out, err = run_cli("--data-dir", d, "calls", "--json", "--user", "kacho",
                             "--password-file", pw)
    assert code == 0 and json.loads(out) == []
    kf = tmp_path / "key"
    kf.write_text(key)
    new = tmp_path / "new"
    new.write_text("kanri-pass-2\n")
    assert run_cli("--data-dir", d, "recovery", "rewrap", "kacho", "--recovery-key-file", kf,
                   "--new-password-file", new)[0] == 0
    # a second init is refused, and the console never takes a password again
    res = console(d, "init\nmallory\nx-pass-123\nx-pass-123\nexit\n")
    assert "already initialised" in res.stdout
    code, out, err = run_cli("--data-dir", d, "ledger", "export", "--csv", "--user", "kacho",
                             "--password-file", new)
    assert "初期設定" in out and "mallory" not in out


def test_console_init_refuses_mismatched_passwords(tmp_path):
    d = tmp_path / "data"
    res = console(d, "init\nkacho\nkanri-pass-1\nkanri-pass-X\nexit\n")
    assert "passwords differ" in res.stdout
    assert not (d / "catalog.sqlite").exists()
