"""Commands over records: init, calls, show, extract, verify.

``calls``, ``show`` and ``extract`` reveal numbers or audio: they are staff
commands and take ``--user NAME --password-file FILE``. ``verify`` needs no
credential and reveals neither.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from pathlib import Path

from appliance.clock import SystemClock
from appliance.cli.common import (ABSENT_JA, NOTICE_JA, STATE_JA, add_credentials, call_json,
                                  open_catalog, open_session, parse_when)
from appliance.config import load_config
from appliance.errors import ConfigError, DataDirError, KeyStoreError
from appliance.ops.evidence import NO_TPM_JA, EvidenceSettings
from appliance.store import devicekey
from appliance.store.catalog import TOKYO
from appliance.store.daykeys import DayKeys
from appliance.store.tpm import Tpm
from appliance.governance.access import Action
from appliance.governance.grounds import GROUNDS, parse_ground
from appliance.governance.setup import initialise
from appliance.governance.ledger import EntryKind
from appliance.governance.users import ROLE_LABELS_JA, Role, read_password_file
from appliance.store.catalog import to_local_text
from appliance.store.datadir import DataDir
from appliance.store.keystore import atomic_write
from appliance.store.opus import read_recording
from appliance.store.sealed import open_sealed
from appliance.governance.audit import STATUS_JA, audit
from appliance.ops.status import live_status

log = logging.getLogger("appliance")


# --- init -------------------------------------------------------------------------
def cmd_init(args) -> int:
    dd = DataDir(args.data_dir)
    password = read_password_file(args.password_file)
    settings = EvidenceSettings.from_config(load_config(args.config))
    if dd.initialised:    # before a device key is made for nothing
        raise DataDirError(f"{dd.root}: 初期設定済みです / already initialised")
    device = settings.device_key(dd.root, create=True)
    device_pem = device.public_pem() if device is not None else None
    now = SystemClock().now()
    recovery = initialise(dd, args.manager, password, now, device_pem=device_pem)
    if settings.tcti is not None:
        # day and hold keys in the TPM: every data key is wrapped in its day's (R8)
        DayKeys(Tpm(settings.tcti)).provision(now.astimezone(TOKYO).date())
        dd.keys.set_tpm(settings.tcti)
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
    if device_pem is not None:
        print(f"装置鍵 (公開鍵) / device public key, ECDSA P-256 ({device.where}): "
              "市で保管してください / keep it for the city (appliance verify checks recordings "
              "against it)")
        print(f"指紋 / fingerprint (SHA-256): {devicekey.fingerprint(device_pem)}")
        print(device_pem.decode(), end="")
    else:
        print("装置鍵なし: 録音は装置署名されません ([tpm] tcti か [device] key_file を設定) / no "
              "device key configured: recordings will not be device-signed")
    if settings.tcti is None:
        print(NO_TPM_JA)
    print(f"初期設定完了 / initialised {dd.root}: {ROLE_LABELS_JA[Role.MANAGER]} {args.manager}")
    return 0


# --- calls / show -----------------------------------------------------------------
def cmd_calls(args) -> int:
    with open_session(args) as session:
        session.authorize(Action.LIST)
        rows = session.catalog.calls(number=args.number,
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
    with open_session(args) as session:
        session.authorize(Action.LIST, call_ids=[args.call_id])
        row = session.catalog.get_call(args.call_id)
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
    with open_session(args) as session:
        try:
            ground, reference = parse_ground(args.ground, args.reference)
        except Exception as exc:
            session.ledger.append(EntryKind.REFUSED, session.now(), call_ids=[args.call_id],
                                  actor=session.user.name,
                                  detail={"action": "extract", "reason": str(exc)})
            raise
        session.authorize(Action.EXTRACT, ground=ground, call_ids=[args.call_id],
                          reference=reference)
        row = session.catalog.get_call(args.call_id)
        if row["state"] not in ("complete", "truncated"):
            raise KeyStoreError(f"通話 {args.call_id} は{STATE_JA.get(row['state'])}のため複製できません"
                                f" / call is {row['state']}: nothing to extract")
        if args.out.exists():
            raise ConfigError(f"{args.out}: 既に存在します / already exists (never overwritten)")
        dd = session.datadir
        data_key = dd.keys.data_key(row["key_id"], session.archive_key())
        opened = open_sealed(dd.path_of(row["recording_path"]).read_bytes(), data_key)
        read_recording(opened.payload)   # refuse to hand out something that does not decode
        atomic_write(args.out, opened.payload, 0o600)
        session.ledger.append(EntryKind.EXTRACT, session.now(), call_ids=[args.call_id],
                              ground=str(ground), reference=reference, actor=session.user.name,
                              detail={"out": str(args.out), "complete": opened.complete})
    info = GROUNDS[ground]
    note = "" if opened.complete else " (途中で切断された録音 / truncated recording)"
    print(f"複製しました / extracted {args.call_id} → {args.out}{note}; "
          f"根拠 {info.label_ja} ({info.article}), 参照 {reference}")
    return 0


# --- inspect ----------------------------------------------------------------------
def cmd_inspect(args) -> int:
    """Describe a plain Ogg Opus copy (an extract or an export): no key, no catalog."""
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{args.file}: 読めません / cannot read ({exc.strerror})") from None
    rec = read_recording(data)
    info = {"file": str(args.file), "duration_s": round(rec.duration_s, 3), "channels": 2,
            "input_rate": rec.input_rate, "pre_skip": rec.pre_skip, "truncated": rec.truncated,
            "damaged_pages": rec.damaged_pages, "tags": rec.tags,
            "sha256": hashlib.sha256(data).hexdigest()}
    if args.json:
        json.dump(info, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"{args.file}: {info['duration_s']:.2f} s, 2 ch (左 相手方 / 右 職員側), "
          f"{'途中で切断 / truncated' if rec.truncated else '完全 / complete'}")
    for k, v in rec.tags.items():
        print(f"  {k} = {v}")
    print(f"  SHA-256 {info['sha256']}")
    return 0


# --- verify -----------------------------------------------------------------------
def cmd_verify(args) -> int:
    device_pem = None
    if args.device_key:
        try:
            device_pem = args.device_key.read_bytes()
            devicekey.load_public(device_pem)
        except OSError as exc:
            raise ConfigError(f"{args.device_key}: 読めません / cannot read ({exc.strerror})") \
                from None
    with open_catalog(args) as (dd, catalog):
        running = dd.recorder_running() or live_status(dd.root) is not None
        result = audit(dd, catalog, recorder_running=running, device_pem=device_pem)
    bad = result.problems
    if args.json:
        json.dump({"ok": result.ok, "checked": result.checked,
                   "ledger_entries": result.ledger_entries,
                   "device_signed": result.device_signed,
                   "problems": [f.as_dict() for f in bad],
                   "findings": [f.as_dict() for f in result.findings]},
                  sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        for f in result.findings:
            if f.problem or f.status == "truncated":
                print(f"{f.call_id}: {STATUS_JA[f.status]} / {f.status}: {f.detail}")
        if not result.device_signed:
            print("装置署名の検査なし (装置鍵が登録されていません) / no device key pinned: "
                  "capture statements not checked")
        print(f"{result.checked} 件検査, 問題 {len(bad)} 件 / checked {result.checked}, "
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

    p = sub.add_parser("inspect", help="Ogg Opus の複製を調べる (鍵不要) / describe a plain "
                       "Ogg Opus copy (duration, tags, truncation)")
    p.add_argument("file", type=Path, metavar="FILE.opus")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("verify", help="全録音の改変検査 (鍵不要) / check every recording against "
                       "the catalog, the ledger and the device's signatures (no key needed)")
    p.add_argument("--device-key", type=Path, metavar="FILE.pem",
                   help="市が保管する装置鍵 (公開鍵) と照合 / pin the device public key the city "
                        "kept from 'appliance init'")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_verify)
