"""``appliance export``, ``appliance verify-export``, ``appliance signing-key`` (R12, R13).

``export`` is a staff command (it reveals numbers and audio); ``verify-export``
and ``signing-key`` need no credential: the first reads only the bundle (and,
if given, the published public key), the second only the public key.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from appliance.clock import SystemClock
from appliance.cli.common import add_credentials, open_catalog, open_session
from appliance.config import load_config
from appliance.errors import ApplianceError, ConfigError
from appliance.ops.evidence import EvidenceSettings, Timestamping
from appliance.governance import bundle
from appliance.governance.exports import create_export
from appliance.governance.grounds import GROUNDS, Ground
from appliance.store.datadir import DataDir
from appliance.store.keystore import atomic_write


def print_export(result, header: str) -> None:
    info = GROUNDS[result.ground]
    print(f"{header} / exported {result.export_id} → {result.path}")
    print(f"  通話 / calls      {len(result.call_ids)} 件: {', '.join(result.call_ids)}")
    print(f"  根拠 / ground     {info.label_ja}（要綱{info.article}）, 参照 {result.reference}")
    print(f"  署名鍵の指紋 / signing-key fingerprint {result.fingerprint}")
    print("  cover.html（提供書）を印刷し、遵守事項を示して受領の署名を得てください / print "
          "cover.html and have the recipient sign it")


def export_stamping(args) -> Timestamping:
    """The TSA for an export's manifest and the ledger head after it ([timestamp])."""
    return Timestamping(EvidenceSettings.from_config(load_config(args.config)),
                        DataDir(args.data_dir), SystemClock().now)


def cmd_export(args) -> int:
    stamping = export_stamping(args)
    with open_session(args) as s:
        result = create_export(
            s, list(args.call_ids), args.ground, args.reference, args.recipient, args.out,
            approver=args.approver,
            stamp=(lambda d: stamping.manifest_token(d, s.catalog)) if stamping.enabled else None)
        stamping.stamp_ledger("export", s.catalog)      # the 提供 entry, at once
    if args.json:
        json.dump({"export_id": result.export_id, "path": str(result.path),
                   "call_ids": result.call_ids, "manifest_sha256": result.manifest_sha256,
                   "fingerprint": result.fingerprint}, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        print_export(result, "提供物を作成しました")
    return 0


def _local_signing_fingerprint(data_dir: Path) -> str | None:
    """On an appliance, its own published key pins the signer (no --public-key needed)."""
    try:
        return bundle.fingerprint(DataDir(data_dir).keys.verify_key())
    except (ApplianceError, OSError):
        return None


def cmd_verify_export(args) -> int:
    if not args.path.is_dir():
        raise ConfigError(f"{args.path}: 提供物のフォルダがありません / no such bundle directory")
    pinned = None
    if args.public_key:
        try:
            pinned = bundle.parse_public_key(args.public_key.read_bytes())
        except OSError as exc:
            raise ConfigError(f"{args.public_key}: 公開鍵を読めません / cannot read ({exc.strerror})") \
                from None
    pin_fp = None
    if args.fingerprint:
        pin_fp = args.fingerprint.strip().lower().replace(":", "")
        if len(pin_fp) != 64 or any(c not in "0123456789abcdef" for c in pin_fp):
            raise ConfigError("--fingerprint は SHA-256 の16進64桁 / --fingerprint takes the "
                              "64 hex digits 'appliance signing-key' prints")
    elif pinned is None:
        pin_fp = _local_signing_fingerprint(args.data_dir)
    tsa_ca = args.tsa_ca
    if tsa_ca is None:
        tsa_ca = EvidenceSettings.from_config(load_config(args.config)).tsa_ca
    check = bundle.pin_signer(bundle.verify_bundle(args.path, pinned, tsa_ca=tsa_ca), pin_fp)
    if args.json:
        json.dump(check.as_dict(), sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0 if check.ok else 1
    if check.ok:
        print(f"検証成功 / VALID: {check.export_id}, 署名と {check.files_checked} 個のファイルの "
              "SHA-256 が一致し、過不足はありません / signature and every file's SHA-256 match, "
              "no file missing or extra")
    else:
        print("検証失敗 / INVALID:")
        for problem in check.problems[:50]:
            print(f"  {problem}")
    if check.fingerprint:
        print(f"署名鍵の指紋 / signing-key fingerprint (SHA-256): {check.fingerprint}")
        print(f"  {bundle.SIGNER_TEXT[check.signer]}")
    if check.timestamp:
        print(f"時刻認証 / time-stamp: {check.timestamp_text()}")
    return 0 if check.ok else 1


def cmd_signing_key(args) -> int:
    with open_catalog(args) as (dd, _):      # an appliance's data directory, or the centre's
        key = dd.keys.verify_key()
    pem = bundle.public_key_pem(key)
    if args.out:
        if args.out.exists():
            raise ConfigError(f"{args.out}: 既に存在します / already exists (never overwritten)")
        atomic_write(args.out, pem.encode(), 0o644)
    if args.json:
        json.dump({"algorithm": "Ed25519", "fingerprint": bundle.fingerprint(key), "pem": pem},
                  sys.stdout, indent=1)
        print()
        return 0
    print("提供物の署名鍵 (公開鍵) / export-signing public key, Ed25519")
    print(f"指紋 / fingerprint (SHA-256): {bundle.fingerprint(key)}")
    print(pem, end="")
    if args.out:
        print(f"{args.out} に書き出しました / written to {args.out}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("export", help="提供物の作成 (第三者提供, 根拠必須) / a signed bundle of "
                       "recordings for a third party (staff; ground, reference, recipient)")
    p.add_argument("call_ids", nargs="+", metavar="CALL_ID")
    p.add_argument("--ground", help="根拠 / ground: " + ", ".join(
        f"{g.value} ({i.label_ja})" for g, i in GROUNDS.items() if g != Ground.DUTY)
        + " (duty は提供の根拠になりません / duty is not a ground for provision)")
    p.add_argument("--reference", help="参照番号 (照会文書番号・市長決裁番号など) / reference "
                   "(document number of the request, the mayor's approval …)")
    p.add_argument("--recipient", required=True,
                   help="提供先 (機関名・氏名) / recipient (authority, person)")
    p.add_argument("--out", type=Path, required=True,
                   help="作成する提供物のフォルダ (新規) / bundle directory to create (must not exist)")
    p.add_argument("--approver", help="承認者 (mayor の場合は省略時「市長」) / who approved "
                   "(default for mayor: 市長)")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("verify-export", help="提供物の検証 (鍵・データ不要) / check a bundle offline: "
                       "signature, every file's SHA-256, no missing or extra file")
    p.add_argument("path", type=Path, metavar="PATH", help="提供物のフォルダ / bundle directory")
    p.add_argument("--public-key", type=Path, metavar="FILE",
                   help="公表された公開鍵 (PEM・32バイト・16進) で検証 / pin the published public "
                        "key (PEM, 32 raw bytes or hex); default: the key inside the bundle")
    p.add_argument("--fingerprint", metavar="HEX",
                   help="公表された署名鍵の指紋 (SHA-256) で署名者を確認 / pin the signer by the "
                        "published fingerprint; without a pin the signer is unknown (exit 1)")
    p.add_argument("--tsa-ca", type=Path, metavar="FILE.pem",
                   help="時刻認証局の CA 証明書 / the time-stamping authority's CA, to check the "
                        "bundle's RFC 3161 token")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_verify_export)

    p = sub.add_parser("signing-key", help="提供物の署名鍵 (公開鍵) と指紋を表示 / show the "
                       "export-signing public key and its fingerprint, to publish")
    p.add_argument("--out", type=Path, help="PEM をこのファイルに書く / write the PEM to FILE")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    p.set_defaults(func=cmd_signing_key)
