"""Helpers for the web tests (importable: tests run with --import-mode=importlib)."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from appliance.cli import main as cli_main
from appliance.clock import FakeClock
from appliance.engine.recorder import CallRecorder
from appliance.engine.synthetic import two_leg_frames
from appliance.store.datadir import DataDir
from appliance.web import WebContext, WebSettings, create_app

#: the numbers of the recorded calls; no answer to a refused request may contain them
FAR = ("0263345678", "09012345678", "0312345678")
NEAR = "0263340001"
PASSWORDS = {"kacho": "kacho-pass-1", "tanto": "tanto-pass-1", "dairi": "dairi-pass-1",
             "hoshu": "hoshu-pass-1", "tanto2": "tanto2-pass-1"}
T0 = datetime(2026, 1, 6, 1, 30, tzinfo=timezone.utc)      # 10:30 JST


def record(d: Path, far_number: str, started_at: datetime, seconds: float, seed: int,
           direction: str = "in", trunk: str = "T1", site: str = "東庁舎") -> str:
    dd = DataDir(d)
    with dd.open_catalog(datetime.now(timezone.utc)) as cat:
        rec = CallRecorder(dd, cat, site).start(trunk, 1, direction, started_at)
        for far, near in two_leg_frames(seconds, seed=seed):
            rec.write(far, near)
        rec.finish(started_at + timedelta(seconds=seconds), answered_at=started_at,
                   far_number=far_number, near_number=NEAR,
                   notice="played" if direction == "in" else "none")
        return rec.call_id


def make_context(d: Path, clock=None, **settings) -> WebContext:
    return WebContext.load(d, None, clock=clock or FakeClock(T0 + timedelta(days=2)),
                           settings=WebSettings(**settings))


def login(client: TestClient, user: str, password: str | None = None):
    """Sign in as the browser does: the login page's token, then the form."""
    token = client.get("/api/session/login-csrf").json()["csrf"]
    r = client.post("/api/session", json={"user": user, "password": password or PASSWORDS[user]},
                    headers={"X-CSRF-Token": token})
    if r.status_code == 200:
        client.headers["X-CSRF-Token"] = r.json()["csrf"]
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
