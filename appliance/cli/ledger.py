"""``appliance ledger verify|export``: the 通話記録管理簿 (R14)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

from appliance.cli.common import add_credentials, open_catalog, open_session
from appliance.errors import ConfigError
from appliance.governance.access import Action
from appliance.governance.ledger import Ledger, csv_bytes
from appliance.governance.timestamps import check_tokens, ledger_tokens
from appliance.store.keystore import atomic_write

def _anchor(text: str | None) -> tuple[int, str] | None:
    if not text:
        return None
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise ConfigError("--anchor は 番号:ハッシュ / --anchor takes SEQ:HASH as printed by verify")
    return int(seq), digest.lower()


def _tsa_ca(args) -> Path | None:
    if args.tsa_ca:
        return args.tsa_ca
    from appliance.config import load_config
    from appliance.ops.evidence import EvidenceSettings
    return EvidenceSettings.from_config(load_config(args.config)).tsa_ca


def cmd_verify(args) -> int:
    ca = _tsa_ca(args)
    if ca is not None and not ca.is_file():
        raise ConfigError(f"{ca}: 時刻認証局の CA 証明書がありません / no such TSA CA file")
    with open_catalog(args) as (_, catalog):
        res = Ledger(catalog).verify(_anchor(args.anchor))
        tokens = check_tokens(catalog, ca)
    ok = res.ok and not tokens.problems
    if args.json:
        json.dump({"ok": ok, "entries": res.entries, "first_bad_seq": res.first_bad_seq,
                   "reason": res.reason, "head": f"{res.head_seq}:{res.head_hash}",
                   **tokens.as_dict()}, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0 if ok else 1
    if res.ok:
        print(f"管理簿は改ざんされていません (連鎖) / ledger intact (chain): {res.entries} 件 / entries")
        print(f"先頭 / head (監査記録用 / note it for the next audit): {res.head_seq}:{res.head_hash}")
    else:
        print(f"管理簿の改ざんを検出 / ledger TAMPERED: chain broken at {res.first_bad_seq} "
              f"(最初の不正な記録 / first bad entry): {res.reason}")
    for p in tokens.problems:
        print(f"時刻認証の矛盾 / TOKEN: {p['problem']}")
    if tokens.fixed_seq:
        print(f"時刻認証 / time-stamped: 記録 #1〜#{tokens.fixed_seq} は {tokens.fixed_at} 以降"
              f"書き換えられていません / entries 1–{tokens.fixed_seq} cannot have been rewritten "
              f"after {tokens.fixed_at} ({tokens.tokens} token(s)"
              f"{'' if tokens.checked else ', signatures NOT checked: no [timestamp] ca_file'})")
    else:
        print("時刻認証なし / no valid time-stamp token: nothing outside the appliance vouches "
              "for this ledger")
    if tokens.unstamped_since_seq:
        print(f"  記録 #{tokens.unstamped_since_seq} 以降は未認証 / entries from "
              f"#{tokens.unstamped_since_seq} on are not time-stamped yet")
    return 0 if ok else 1


def cmd_tokens(args) -> int:
    """Each token as a .tsr file with the digest it covers: for openssl ts -verify."""
    if not args.out.is_dir():
        raise ConfigError(f"{args.out}: フォルダがありません / no such directory")
    with open_catalog(args) as (_, catalog):
        tokens = ledger_tokens(catalog)
    listing = []
    for seq, d in tokens:
        try:
            raw = base64.b64decode(d.get("token", ""), validate=True)
        except ValueError:
            continue
        path = args.out / f"token-{seq}.tsr"
        if path.exists() or path.is_symlink():
            raise ConfigError(f"{path}: 既に存在します / already exists (never overwritten)")
        atomic_write(path, raw, 0o644)
        listing.append({"token_seq": seq, "covers_seq": d.get("covers_seq"),
                        "digest": d.get("covers_hash"), "file": str(path),
                        "gen_time": d.get("gen_time")})
        if not args.json:
            print(f"{path}  #{d.get('covers_seq')}  {d.get('covers_hash')}  {d.get('gen_time')}")
    if args.json:
        json.dump(listing, sys.stdout, ensure_ascii=False, indent=1)
        print()
    return 0


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
    v.add_argument("--tsa-ca", type=Path, metavar="FILE.pem",
                   help="時刻認証局の CA (既定: [timestamp] ca_file) / the TSA's CA certificate(s)")
    v.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    v.set_defaults(func=cmd_verify)
    t = lsub.add_parser("tokens", help="時刻認証トークンを書き出す (資格不要) / write every RFC 3161 "
                        "token as a .tsr file, for openssl ts -verify")
    t.add_argument("--out", type=Path, required=True, help="出力先フォルダ / output directory")
    t.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    t.set_defaults(func=cmd_tokens)
    e = lsub.add_parser("export", help="管理簿を CSV で書き出す (職員) / write the ledger as CSV (staff)")
    e.add_argument("--csv", action="store_true", help="UTF-8 (BOM 付き) CSV / CSV for Japanese Excel")
    e.add_argument("--out", type=Path, help="出力ファイル (既定は標準出力) / output file (default stdout)")
    add_credentials(e)
    e.set_defaults(func=cmd_export)
