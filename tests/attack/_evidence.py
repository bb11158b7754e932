"""A recorded data directory with a device key, and the insider's tools to tamper with it.

Built once per test module (``recorded``: three calls through the real
recorder on the simulator, device-signed with a root-only key file outside
the data dir), then copied for each test, so every attack starts from the
same genuine evidence.
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import shutil
import sqlite3
from pathlib import Path

from nacl.public import PublicKey, SealedBox

from appliance.cli import main as cli_main
from appliance.governance.ledger import GENESIS, _entry_hash, _FIELDS
from appliance.store import sealed

PASSWORD = "kanri-pass-1"

SCENARIO = """
[scenario]
name = "evidence"
tail = 0.5

[[trunk]]
id = "T1"

[[trunk]]
id = "T2"

[[call]]
trunk = "T1"
at = 0.2
direction = "in"
far_number = "0263345000"
rings = 1
talk = 3.0
hangup = "near"

[[call]]
trunk = "T2"
at = 0.4
direction = "out"
far_number = "0312345678"
rings = 1
talk = 2.5
hangup = "far"

[[call]]
trunk = "T1"
at = 20.0
direction = "in"
far_number = "0265551234"
rings = 1
talk = 2.0
hangup = "far"
"""


def cli(*args) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def build(root: Path, extra_config: str = "") -> dict:
    """init (with a device key file) and record the scenario; returns the paths."""
    etc = root / "etc"
    etc.mkdir(parents=True)
    config = etc / "appliance.toml"
    config.write_text(f'[device]\nkey_file = "{etc / "device-key.pem"}"\n' + extra_config)
    (etc / "scenario.toml").write_text(SCENARIO)
    pw = etc / "manager.pw"
    pw.write_text(PASSWORD + "\n")
    data = root / "data"
    code, out, err = cli("--data-dir", data, "--config", config, "init", "--manager", "kacho",
                         "--password-file", pw, "--recovery-key-file", etc / "recovery.txt")
    assert code == 0, err
    code, out, err = cli("--data-dir", data, "--config", config, "run", "--fast",
                         "--interface", f"sim://{etc / 'scenario.toml'}")
    assert code == 0, err
    return {"root": root, "data": data, "config": config, "password_file": pw,
            "device_pem": out}


def copy_of(golden: dict, dst: Path) -> dict:
    shutil.copytree(golden["root"], dst)
    out = {k: (dst / Path(v).relative_to(golden["root"]) if isinstance(v, Path) else v)
           for k, v in golden.items()}
    # the config names the key file by absolute path: point it at the copy
    cfg = out["config"]
    cfg.write_text(cfg.read_text().replace(str(golden["root"]), str(dst)))
    return out


def staff(env: dict) -> list[str]:
    return ["--user", "kacho", "--password-file", str(env["password_file"])]


def verify(env: dict, *extra) -> tuple[int, dict]:
    code, out, err = cli("--data-dir", env["data"], "--config", env["config"], "verify",
                         "--json", *extra)
    assert "Traceback" not in err
    return code, json.loads(out)


def problems(report: dict) -> set[tuple[str, str]]:
    return {(p["call_id"], p["status"]) for p in report["problems"]}


def db(env: dict) -> sqlite3.Connection:
    return sqlite3.connect(env["data"] / "catalog.sqlite", isolation_level=None)


def calls(env: dict) -> list[dict]:
    conn = db(env)
    conn.row_factory = sqlite3.Row
    rows = [dict(r) for r in conn.execute(
        "SELECT * FROM calls WHERE recording_path IS NOT NULL ORDER BY started_at")]
    conn.close()
    return rows


def rechain(conn: sqlite3.Connection, from_seq: int = 1) -> None:
    """The insider's move after editing ledger rows: recompute every hash from from_seq on."""
    prev = GENESIS
    if from_seq > 1:
        prev = conn.execute("SELECT hash FROM ledger WHERE seq = ?", (from_seq - 1,)).fetchone()[0]
    rows = conn.execute(f"SELECT {', '.join(_FIELDS)} FROM ledger WHERE seq >= ? ORDER BY seq",
                        (from_seq,)).fetchall()
    for r in rows:
        entry = dict(zip(_FIELDS, r))
        h = _entry_hash(prev, entry)
        conn.execute("UPDATE ledger SET prev_hash = ?, hash = ? WHERE seq = ?",
                     (prev, h, entry["seq"]))
        prev = h


def forge_recording(env: dict, row: dict, payload: bytes = b"OggS" + b"\0" * 400) -> dict:
    """What someone holding only keys/archive.pub can do: a new file sealed under a new data key."""
    data_dir = env["data"]
    public = PublicKey((data_dir / "keys" / "archive.pub").read_bytes())
    key_id = secrets.token_hex(12)
    data_key = secrets.token_bytes(32)
    (data_dir / "keys" / "data" / f"{key_id}.key").write_bytes(SealedBox(public).encrypt(data_key))
    enc = sealed.SealingEncoder(row["id"], key_id, data_key)
    blob = enc.chunk(payload, 8000) + enc.chunk(b"", 16000, final=True)
    path = data_dir / row["recording_path"]
    path.write_bytes(blob)
    import hashlib
    return {"key_id": key_id, "size": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
