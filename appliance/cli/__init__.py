"""The ``appliance`` command: a thin front end over the layers.

Each command group lives in its own module and registers itself through
:data:`COMMAND_MODULES`; ``main`` turns every :class:`ApplianceError` into a
clear message and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from appliance.errors import ApplianceError
from appliance.logtext import configure_logging, redact

# Modules that add sub-commands; each has ``register(subparsers)``. Order is
# the order of ``appliance --help``.
COMMAND_MODULES = (
    "appliance.cli.records",
    "appliance.cli.run",
    "appliance.cli.recovery",
    "appliance.cli.users",
    "appliance.cli.holds",
    "appliance.cli.retention",
    "appliance.cli.requests",
    "appliance.cli.exports",
    "appliance.cli.ledger",
    "appliance.cli.alarms",
    "appliance.cli.status",
    "appliance.cli.web",
    "appliance.cli.replication",
    "appliance.cli.central",
    "appliance.cli.dsp",
    "appliance.cli.bench",
    "appliance.cli.isdn",
    "appliance.cli.console",
)

DEFAULT_DATA_DIR = Path("/var/lib/appliance")
DEFAULT_CONFIG = Path("/etc/appliance/appliance.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="appliance",
        description="通話録音装置 / call-recorder appliance",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=DEFAULT_DATA_DIR,
        help="catalog, recordings and keys (default: %(default)s)")
    parser.add_argument(
        "--config", type=Path, default=None,
        help=f"configuration file (default: {DEFAULT_CONFIG} when it exists)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # one clock (Japan time with offset) and no number in any log line (appliance.logtext)
    configure_logging(args.verbose)
    try:
        return int(args.func(args) or 0)
    except ApplianceError as exc:
        # a service's stderr is the journal: numbers masked there (a person at a
        # terminal sees what they typed)
        text = str(exc) if sys.stderr.isatty() else redact(str(exc))
        print(f"appliance: エラー / error: {text}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (`| head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
