"""Commands over records: init, calls, show, extract, verify.

``calls``, ``show`` and ``extract`` reveal numbers or audio: they are staff
commands and take ``--user NAME --password-file FILE``. ``verify`` needs no
credential and reveals neither.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, time as dtime
from pathlib import Path

from appliance.clock import SystemClock
from appliance.errors import ConfigError, DataDirError, Forbidden, KeyStoreError
from appliance.governance.grounds import GROUNDS, parse_ground
from appliance.governance.ledger import EntryKind, Ledger
from appliance.governance.users import (ROLE_LABELS_JA, Role, User, add_user, authenticate,
                                        read_password_file, require_staff)
from appliance.store.catalog import TOKYO, to_local_text
from appliance.store.datadir import DataDir
from appliance.store.keystore import atomic_write
from appliance.store.opus import read_recording
from appliance.store.sealed import open_sealed
from appliance.store.verify import STATUS_JA, verify_recordings

log = logging.getLogger("appliance")

CALL_FIELDS = ("id", "site", "trunk", "channel", "direction", "started_at", "answered_at",
               "ended_at", "duration_s", "far_number", "near_number", "called_number",
               "number_absent_reason", "notice", "state", "sha256", "size", "recorded_s")
ABSENT_JA = {"withheld": "非通知", "unavailable": "表示圏外", "public_phone": "公衆電話"}
NOTICE_JA = {"played": "案内済", "not_heard": "案内未確認", "none": "案内なし"}
STATE_JA = {"recording": "録音中", "complete": "完了", "truncated": "途中切断",
            "unanswered": "不応答", "erased": "廃棄済"}


# --- shared helpers ---------------------------------------------------------------
def _datadir(args) -> DataDir:
    return DataDir(args.data_dir)


def add_credentials(p) -> None:
    p.add_argument("--user", required=True, help="職員の利用者名 / staff user name")
    p.add_argument("--password-file", type=Path, required=True,
                   help="パスワードを1行で記したファイル / file holding the password")


def sign_in(catalog, args) -> tuple[User, bytes]:
    password = read_password_file(args.password_file)
    return authenticate(catalog, args.user, password), password


def staff_only(catalog, user: User, now, what: str) -> None:
    """Refuse non-staff and put the refusal on the ledger (R11, R14)."""
    try:
        require_staff(user)
    except Forbidden as exc:
        Ledger(catalog).append(EntryKind.REFUSED, now, actor=user.name,
                               detail={"command": what, "reason": str(exc)})
        raise


def parse_when(text: str, *, end: bool = False) -> datetime:
    """ISO date or date-time; without an offset it is Japan time."""
    try:
        if len(text) == 10:
            d = datetime.fromisoformat(text).date()
            t = datetime.combine(d, dtime.min, TOKYO)
            return t
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"日時の形式が正しくありません / not an ISO 8601 date or time: {text!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=TOKYO)


def call_json(row: dict) -> dict:
    out = {k: row.get(k) for k in CALL_FIELDS}
    for k in ("started_at", "answered_at", "ended_at"):
        out[k] = to_local_text(row.get(k))
    return out


# --- init -------------------------------------------------------------------------
def cmd_init(args) -> int:
    clock = SystemClock()
    dd = _datadir(args)
    if dd.initialised:
        raise DataDirError(f"{dd.root}: 初期設定済みです / already initialised")
    password = read_password_file(args.password_file)
    dd.root.mkdir(parents=True, exist_ok=True)
    now = clock.now()
    catalog = dd.open_catalog(now, create=True)
    with catalog:
        add_user(catalog, args.manager, Role.MANAGER, password, now)
        private = dd.keys.create_archive()
        dd.keys.wrap_for_user(args.manager, password, private)
        recovery = dd.keys.wrap_for_recovery(private)
        del private
        Ledger(catalog).append(EntryKind.INIT, now, actor=args.manager,
                               detail={"manager": args.manager})
    if args.recovery_key_file:
        atomic_write(args.recovery_key_file, (recovery + "\n").encode())
        print(f"回復キーを {args.recovery_key_file} に書き出しました。印刷して金庫に保管し、"
              "このファイルは消去してください。 / recovery key written; print it, keep it in "
              "the safe, then delete the file.")
    else:
        print("回復キー / RECOVERY KEY (一度だけ表示 / shown once):")
        print(f"  {recovery}")
        print("印刷して金庫に保管してください。これを失い全職員のパスワードも失うと、"
              "録音は誰も再生できません。 / Print it and keep it in the safe.")
    print(f"初期設定完了 / initialised {dd.root}: {ROLE_LABELS_JA[Role.MANAGER]} {args.manager}")
    return 0


# --- calls / show -----------------------------------------------------------------
def cmd_calls(args) -> int:
    clock = SystemClock()
    dd = _datadir(args)
    with dd.open_catalog(clock.now()) as catalog:
        user, _ = sign_in(catalog, args)
        staff_only(catalog, user, clock.now(), "calls")
        rows = catalog.calls(number=args.number,
                             since=parse_when(args.since) if args.since else None,
                             until=parse_when(args.until) if args.until else None)
    if args.json:
        json.dump([call_json(r) for r in rows], sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"{'通話ID':<30} {'開始':<25} {'方向':<4} {'回線':<6} {'相手番号':<14} {'通話秒':>7} 状態")
    for r in rows:
        far = r["far_number"] or ABSENT_JA.get(r["number_absent_reason"] or "", "-")
        dur = f"{r['duration_s']:.1f}" if r["duration_s"] is not None else "-"
        print(f"{r['id']:<30} {to_local_text(r['started_at']):<25} "
              f"{'着信' if r['direction'] == 'in' else '発信':<4} {r['trunk']:<6} {far:<14} "
              f"{dur:>7} {STATE_JA.get(r['state'], r['state'])}")
    print(f"{len(rows)} 件 / calls")
    return 0


def cmd_show(args) -> int:
    clock = SystemClock()
    dd = _datadir(args)
    with dd.open_catalog(clock.now()) as catalog:
        user, _ = sign_in(catalog, args)
        staff_only(catalog, user, clock.now(), "show")
        row = catalog.get_call(args.call_id)
    if args.json:
        json.dump(call_json(row), sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    c = call_json(row)
    labels = [("通話ID / call", c["id"]), ("庁舎 / site", c["site"]),
              ("回線 / trunk", f"{c['trunk']} ch{c['channel']}"),
              ("方向 / direction", "着信 / in" if c["direction"] == "in" else "発信 / out"),
              ("開始 / started", c["started_at"]), ("応答 / answered", c["answered_at"]),
              ("終了 / ended", c["ended_at"]), ("通話時間 / duration (s)", c["duration_s"]),
              ("相手番号 / far number", c["far_number"]
               or ABSENT_JA.get(c["number_absent_reason"] or "", None)),
              ("自局番号 / near number", c["near_number"]),
              ("音声案内 / notice", NOTICE_JA.get(c["notice"], c["notice"])),
              ("状態 / state", STATE_JA.get(c["state"], c["state"])),
              ("SHA-256", c["sha256"])]
    for k, v in labels:
        print(f"{k:<26} {v if v is not None else '-'}")
    return 0


# --- extract ----------------------------------------------------------------------
def cmd_extract(args) -> int:
    clock = SystemClock()
    dd = _datadir(args)
    with dd.open_catalog(clock.now()) as catalog:
        user, password = sign_in(catalog, args)
        ledger = Ledger(catalog)
        staff_only(catalog, user, clock.now(), "extract")
        try:
            ground, reference = parse_ground(args.ground, args.reference)
        except Exception as exc:
            ledger.append(EntryKind.REFUSED, clock.now(), call_ids=[args.call_id],
                          actor=user.name, detail={"command": "extract", "reason": str(exc)})
            raise
        row = catalog.get_call(args.call_id)
        if row["state"] not in ("complete", "truncated"):
            raise KeyStoreError(f"通話 {args.call_id} は{STATE_JA.get(row['state'])}のため複製できません"
                                f" / call is {row['state']}: nothing to extract")
        private = dd.keys.unwrap_with_password(user.name, password)
        data_key = dd.keys.data_key(row["key_id"], private)
        opened = open_sealed(dd.path_of(row["recording_path"]).read_bytes(), data_key)
        read_recording(opened.payload)   # refuse to hand out something that does not decode
        if args.out.exists():
            raise ConfigError(f"{args.out}: 既に存在します / already exists (never overwritten)")
        atomic_write(args.out, opened.payload, 0o600)
        ledger.append(EntryKind.EXTRACT, clock.now(), call_ids=[args.call_id], ground=str(ground),
                      reference=reference, actor=user.name,
                      detail={"out": str(args.out), "complete": opened.complete})
    info = GROUNDS[ground]
    note = "" if opened.complete else " (途中で切断された録音 / truncated recording)"
    print(f"複製しました / extracted {args.call_id} → {args.out}{note}; "
          f"根拠 {info.label_ja} ({info.article}), 参照 {reference}")
    return 0


# --- verify -----------------------------------------------------------------------
def cmd_verify(args) -> int:
    clock = SystemClock()
    dd = _datadir(args)
    with dd.open_catalog(clock.now()) as catalog:
        findings = verify_recordings(dd, catalog)
    bad = [f for f in findings if f.status in ("altered", "truncated", "missing")]
    if args.json:
        json.dump({"ok": not bad, "checked": len(findings),
                   "problems": [f.as_dict() for f in bad]}, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        for f in bad:
            print(f"{f.call_id}: {STATUS_JA[f.status]} / {f.status}: {f.detail}")
        print(f"{len(findings)} 件検査, 問題 {len(bad)} 件 / checked {len(findings)}, "
              f"{len(bad)} problem(s)")
    return 1 if bad else 0


def register(sub) -> None:
    p = sub.add_parser("init", help="初期設定: 保管鍵と管理責任者を作成 / create the archive key "
                       "pair and the first manager")
    p.add_argument("--manager", required=True, help="管理責任者の利用者名 / manager's user name")
    p.add_argument("--password-file", type=Path, required=True,
                   help="管理責任者のパスワードファイル / manager's password file")
    p.add_argument("--recovery-key-file", type=Path,
                   help="回復キーを画面でなくこのファイルに書く / write the recovery key here "
                        "instead of the screen")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("calls", help="通話記録の一覧 (職員) / list call records (staff)")
    add_credentials(p)
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.add_argument("--number", help="相手・自局番号で絞り込み / filter by telephone number")
    p.add_argument("--since", help="この日時以降 / from (ISO 8601; Japan time if no offset)")
    p.add_argument("--until", help="この日時より前 / before (ISO 8601)")
    p.set_defaults(func=cmd_calls)

    p = sub.add_parser("show", help="通話記録の詳細 (職員) / one call record in detail (staff)")
    p.add_argument("call_id", metavar="CALL_ID")
    add_credentials(p)
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("extract", help="録音の複製 (職員, 根拠必須) / extract the plain Ogg Opus "
                       "(staff; names its ground)")
    p.add_argument("call_id", metavar="CALL_ID")
    p.add_argument("--out", type=Path, required=True, help="出力ファイル / output FILE.opus")
    p.add_argument("--ground", help="根拠 / ground: " + ", ".join(
        f"{g.value} ({i.label_ja})" for g, i in GROUNDS.items()))
    p.add_argument("--reference", help="参照番号 (文書番号・事案) / reference (document, case)")
    add_credentials(p)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("verify", help="全録音の改変検査 (鍵不要) / check every recording against "
                       "the catalog (no key needed)")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_verify)
