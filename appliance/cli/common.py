"""What every command group shares: credentials and sessions (labels: appliance.present)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from appliance.clock import SystemClock
from appliance.config import load_config
from appliance.errors import AuthError
from appliance.governance.access import Policy, Session
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import authenticate, read_password_file, refusal_actor
# labels and parsing live in appliance.present; re-exported for the command modules
from appliance.present import (ABSENT_JA, CALL_FIELDS, NOTICE_JA, STATE_JA,  # noqa: F401
                               call_json, parse_when)
from appliance.store.catalog import Catalog
from appliance.store.datadir import DataDir


def add_credentials(p) -> None:
    p.add_argument("--user", required=True, help="職員の利用者名 / staff user name")
    p.add_argument("--password-file", type=Path, required=True,
                   help="パスワードを1行で記したファイル / file holding the password")


@contextlib.contextmanager
def open_catalog(args) -> Iterator[tuple[DataDir, Catalog]]:
    if getattr(args, "central", False):
        # ``appliance central <staff command>``: the same command on the city archive
        from appliance.cli.central import open_centre_catalog
        with open_centre_catalog(args) as pair:
            yield pair
        return
    dd = DataDir(args.data_dir)
    with dd.open_catalog(SystemClock().now()) as catalog:
        yield dd, catalog


@contextlib.contextmanager
def open_session(args) -> Iterator[Session]:
    """Sign in with --user/--password-file; a failed sign-in is on the ledger too."""
    clock = SystemClock()
    config = load_config(args.config)
    policy = Policy.from_config(config.raw.get("policy"))
    password = read_password_file(args.password_file)
    with open_catalog(args) as (dd, catalog):
        try:
            user = authenticate(catalog, args.user, password)
        except AuthError as exc:
            # an unknown name may be a password typed in the wrong place: not kept in clear
            Ledger(catalog).append(EntryKind.REFUSED, clock.now(),
                                   actor=refusal_actor(catalog, args.user),
                                   detail={"action": "sign-in", "reason": str(exc)})
            raise
        yield Session(user, password, dd, catalog, clock.now, policy)
