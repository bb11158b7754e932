"""A small office for the web tests: staff of every role, three recorded calls,
the web app in-process (TestClient) or as a real server on 127.0.0.1."""

from __future__ import annotations

import shutil
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parent))   # for _office (importlib mode)

from _office import FAR, PASSWORDS, T0, free_port, make_context, record  # noqa: E402
from appliance.cli import main as cli_main  # noqa: E402
from appliance.clock import FakeClock  # noqa: E402
from appliance.web import WebContext, create_app  # noqa: E402


@pytest.fixture(scope="session")
def office_template(tmp_path_factory):
    """Built once (argon2 is slow on purpose) and copied for each test."""
    root = tmp_path_factory.mktemp("office")
    d = root / "data"
    for name, pw in PASSWORDS.items():
        (root / f"{name}.pw").write_text(pw + "\n")

    def cli(*args):
        assert cli_main([str(a) for a in args]) == 0, args
    cli("--data-dir", d, "init", "--manager", "kacho", "--password-file", root / "kacho.pw",
        "--recovery-key-file", root / "recovery.txt")
    for name, role in (("tanto", "handler"), ("tanto2", "handler"), ("dairi", "deputy"),
                       ("hoshu", "technician")):
        cli("--data-dir", d, "user", "add", name, "--role", role, "--new-password-file",
            root / f"{name}.pw", "--reference", "人事発令1", "--user", "kacho",
            "--password-file", root / "kacho.pw")
    calls = [record(d, FAR[0], T0, 6.0, seed=1),
             record(d, FAR[1], T0 + timedelta(hours=2), 3.0, seed=2, direction="out",
                    trunk="T2", site="大手事務所"),
             record(d, FAR[2], T0 + timedelta(days=1), 2.0, seed=3)]
    return d, calls


@pytest.fixture
def office(tmp_path, office_template):
    src, calls = office_template
    d = tmp_path / "data"
    shutil.copytree(src, d)
    return d, calls




@pytest.fixture
def clock():
    return FakeClock(T0 + timedelta(days=2))


@pytest.fixture
def ctx(office, clock):
    return make_context(office[0], clock)


@pytest.fixture
def client(ctx):
    with TestClient(create_app(ctx), base_url="https://testserver") as c:
        yield c






@pytest.fixture
def live_server(office):
    """The app under uvicorn on 127.0.0.1 (plain HTTP: loopback only), real clock."""
    import uvicorn
    from appliance.clock import SystemClock

    d, calls = office
    ctx = WebContext.load(d, None, clock=SystemClock(), secure_cookies=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False,
                                           **ctx.settings.server_options()))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "web server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", d, calls
    server.should_exit = True
    thread.join(timeout=10)
