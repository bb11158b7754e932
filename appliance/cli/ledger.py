"""``appliance ledger verify|export``: the 通話記録管理簿 (R14)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.cli.common import add_credentials, open_catalog, open_session
from appliance.errors import ConfigError
from appliance.governance.access import Action
from appliance.governance.ledger import Ledger, csv_bytes
from appliance.store.keystore import atomic_write

def _anchor(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ConfigError("--anchor は 番号:ハッシュ / --anchor takes SEQ:HASH as printed by verify")
    return int(seq), digest.lower()


def cmd_verify(args) -> int:
    with open_catalog(args) as (_, catalog):
        res = Ledger(catalog).verify(_anchor(args.anchor))
    if args.json:
        json.dump({"ok": res.ok, "entries": res.entries, "first_bad_seq": res.first_bad_seq,
                   "reason": res.reason, "head": f"{res.head_seq}:{res.head_hash}"},
                  sys.stdout, ensure_ascii=False, indent=1)
        print()
    elif res.ok:
        print(f"管理簿は改ざんされていません / ledger intact: {res.entries} 件 / entries")
        print(f"先頭 / head (監査記録用 / note it for the next audit): {res.head_seq}:{res.head_hash}")
    else:
        print(f"管理簿の改ざんを検出 / ledger TAMPERED: 最初の不正な記録 / first bad entry "
              f"#{res.first_bad_seq}: {res.reason}")
    return 0 if res.ok else 1


def cmd_export(args) -> int:
    if not args.csv:
        raise ConfigError("--csv を指定してください / say --csv (the only format so far)")
    with open_session(args) as s:
        s.authorize(Action.LEDGER)
        entries = Ledger(s.catalog).entries()
    data = csv_bytes(entries)
    if args.out:
        atomic_write(args.out, data, 0o600)
        print(f"{len(entries)} 件を書き出しました / wrote {len(entries)} entries to {args.out}")
    else:
        sys.stdout.buffer.write(data)
    return 0


def register(sub) -> None:
    p = sub.add_parser("ledger", help="通話記録管理簿 / the management ledger (R14)")
    lsub = p.add_subparsers(dest="ledger_command", metavar="ACTION")
    lsub.required = True
    v = lsub.add_parser("verify", help="改ざん検査 (資格不要) / check the hash chain (no credential)")
    v.add_argument("--anchor", help="前回監査時の先頭 番号:ハッシュ / head noted at the last audit")
    v.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    v.set_defaults(func=cmd_verify)
    e = lsub.add_parser("export", help="管理簿を CSV で書き出す (職員) / write the ledger as CSV (staff)")
    e.add_argument("--csv", action="store_true", help="UTF-8 (BOM 付き) CSV / CSV for Japanese Excel")
    e.add_argument("--out", type=Path, help="出力ファイル (既定は標準出力) / output file (default stdout)")
    add_credentials(e)
    e.set_defaults(func=cmd_export)
