"""appliance.toml for the engine: invalid configuration is refused with file, line and reason."""

from __future__ import annotations

import pytest

from appliance.config import load_config
from appliance.errors import ConfigError
from tests.engine.conftest import CONFIG


def test_the_shipped_demo_configuration_loads():
    cfg = load_config(CONFIG)
    assert cfg.interface.url == "sim://demo.toml"
    assert {e.trunk for e in cfg.exclusions} >= {"T8"}


@pytest.mark.parametrize("text, line, reason", [
    ('[site]\nname = "x"\n\n[interface]\nurl = "demo.toml"\n', 5, "scheme://"),
    ('[[exclusion]]\ntrunk = "T8"\n[[exclusion]]\nkeep_metadata = true\n', 3, "at least one of"),
    ('[[exclusion]]\ntrunk = "T8"\nlines = 2\n', 3, "unknown key 'lines'"),
    ('[engine]\nmax_call_s = 5\n', 2, "max_call_s"),
    ('[notice]\nfile = "nope.wav"\n', 2, "no such notice file"),
])
def test_invalid_configuration_names_file_line_and_reason(tmp_path, text, line, reason):
    p = tmp_path / "appliance.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert f"{p}:{line}:" in str(exc.value) and reason in str(exc.value)


def test_run_refuses_bad_configuration_before_touching_lines(tmp_path, datadir, run_subprocess):
    p = tmp_path / "appliance.toml"
    p.write_text('[interface]\nurl = "alsa+serial://hw:1"\n', encoding="utf-8")
    res = run_subprocess("--data-dir", datadir, "--config", p, "run", "--fast")
    assert res.returncode == 2 and "not available" in res.stderr and "Traceback" not in res.stderr
    p.write_text("[site]\n", encoding="utf-8")
    res = run_subprocess("--data-dir", datadir, "--config", p, "run", "--fast")
    assert res.returncode == 2 and "no line interface" in res.stderr
