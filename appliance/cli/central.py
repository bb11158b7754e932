"""``appliance central …``: the city archive (通話記録センター) on PostgreSQL.

The centre is another front end over the same governance code: the staff
commands of the appliance (``hold``, ``request``, ``export``, ``ledger``,
``user``, ``acting``, ``retention``) are registered again under ``central``
and run unchanged on the centre's PostgreSQL (``--data-dir`` is then the
centre's directory, ``--config`` its configuration with a ``[central]``
table). Its own commands: ``init``, ``serve``, ``site add|list``,
``calls`` (with ``--site``), ``show``, ``extract``, ``status``, ``bench``,
``demo``. See docs/central.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from appliance.clock import SystemClock
from appliance.config import load_config
from appliance.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_CENTRE_DIR = Path("/var/lib/appliance-central")


def _centre_dir(args) -> Path:
    from appliance.cli import DEFAULT_DATA_DIR
    return DEFAULT_CENTRE_DIR if args.data_dir == DEFAULT_DATA_DIR else args.data_dir


def open_centre(args, **kw):
    from appliance.central.centre import Centre, CentralSettings
    config = load_config(args.config)
    settings = CentralSettings.from_config(config.raw.get("central"))
    return Centre(_centre_dir(args), settings, SystemClock(), **kw)


@contextlib.contextmanager
def open_centre_catalog(args) -> Iterator[tuple]:
    with open_centre(args, pool_size=2) as centre:
        centre.dir.require()
        with centre.catalog() as cat:
            yield centre.dir, cat


# --- init ----------------------------------------------------------------------------
def cmd_init(args) -> int:
    from appliance.central.setup import initialise_centre
    from appliance.governance.users import read_password_file
    from appliance.store.keystore import atomic_write
    password = read_password_file(args.password_file)
    with open_centre(args, pool_size=2) as centre:
        recovery = initialise_centre(centre, args.manager, password)
        root = centre.dir.root
    if args.recovery_key_file:
        atomic_write(args.recovery_key_file, (recovery + "\n").encode())
        print(f"回復キーを {args.recovery_key_file} に書き出しました。印刷して金庫に保管し、"
              "このファイルは消去してください。 / recovery key written; print it, keep it in the "
              "safe, then delete the file.")
    else:
        print("回復キー / RECOVERY KEY (一度だけ表示 / shown once):")
        print(f"  {recovery}")
    print(f"センター初期設定完了 / centre initialised {root}: 管理責任者 {args.manager}")
    return 0


# --- sites ---------------------------------------------------------------------------
def cmd_site_add(args) -> int:
    from appliance.central.enrolment import add_site
    from appliance.cli.common import open_session
    with open_centre(args, pool_size=2) as centre, open_session(args) as session:
        token = add_site(session, centre, args.code, args.name)
    if args.json:
        json.dump({"site": args.code, "name": args.name, "token": token}, sys.stdout,
                  ensure_ascii=False)
        print()
        return 0
    print(f"拠点を追加しました / site added: {args.code} ({args.name})")
    print("登録トークン / enrolment token (一度だけ表示 / shown once; 装置で appliance enrol に使用):")
    print(f"  {token}")
    return 0


def cmd_site_list(args) -> int:
    from appliance.central.enrolment import list_sites
    from appliance.cli.common import open_session
    from appliance.governance.access import Action
    with open_centre(args, pool_size=2) as centre, open_session(args) as session:
        session.authorize(Action.LEDGER)
        sites = list_sites(centre)
    if args.json:
        json.dump(sites, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    for s in sites:
        state = "登録待ち / token pending" if s["token_pending"] else f"登録 {s['enrolled_at']}"
        print(f"{s['code']:<12} {s['name']:<10} {state}  通話 {s['calls']} (保管済 {s['stored']})"
              f"  最終受信 {s['last_seen_at'] or '-'}")
    return 0


# --- calls at the centre -----------------------------------------------------------------
def cmd_calls(args) -> int:
    from appliance.cli.common import open_session, parse_when
    from appliance.governance.access import Action
    from appliance.present import call_json
    with open_session(args) as session:
        session.authorize(Action.LIST)
        rows = session.catalog.calls(number=args.number,
                                     since=parse_when(args.since) if args.since else None,
                                     until=parse_when(args.until) if args.until else None,
                                     site_code=args.site)
    out = []
    for r in rows:
        c = call_json(r)
        c["site_code"] = r["site_code"]
        c["site_call_id"] = r["site_call_id"]
        c["stored"] = r["stored_at"] is not None
        out.append(c)
    if args.json:
        json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    for c in out:
        print(f"{c['id']:<44} {c['site']:<8} {c['started_at']} {c['direction']:<3} "
              f"{c['far_number'] or '-':<14} {c['state']}")
    print(f"{len(out)} 件 / calls")
    return 0


# --- the service ---------------------------------------------------------------------------
def cmd_serve(args) -> int:
    import uvicorn

    from appliance.central.siteserver import serve_sites
    from appliance.central.web import centre_app
    from appliance.cli.web import is_loopback, parse_listen
    with open_centre(args) as centre:
        centre.dir.require()
        sites = serve_sites(centre, args.sites_listen)
        t = threading.Thread(target=sites.serve_forever, name="site-listener", daemon=True)
        t.start()
        host, port = parse_listen(args.web_listen or centre.settings.web_listen)
        if args.http and not is_loopback(host):
            raise ConfigError("--http はループバックのみ / --http is refused unless HOST is a "
                              "loopback address")
        app, tls = centre_app(centre, args, secure=not args.http)
        sh, sp = sites.server_address[:2]
        print(f"拠点受信 / sites (mutual TLS): https://{sh}:{sp}/", flush=True)
        print(f"職員サービス / staff service: {'http' if args.http else 'https'}://{host}:{port}/",
              flush=True)
        try:
            uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning",
                        server_header=False, **tls)
        finally:
            sites.shutdown()
            sites.server_close()
    return 0


def cmd_status(args) -> int:
    from appliance.central.enrolment import list_sites
    from appliance.ops.alarms import read_alarms
    with open_centre(args, pool_size=2) as centre:
        sites = list_sites(centre)
        with centre.catalog() as cat:
            alarms = [a.as_dict() for a in read_alarms(cat)]
    doc = {"sites": [{k: s[k] for k in ("code", "name", "enrolled_at", "last_seen_at",
                                        "outbox_seq", "ledger_seq", "calls", "stored")}
                     for s in sites], "alarms": alarms}
    if args.json:
        json.dump(doc, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        for s in doc["sites"]:
            print(f"{s['code']:<12} {s['name']:<10} 通話 {s['calls']} 保管済 {s['stored']} "
                  f"最終受信 {s['last_seen_at'] or '-'}")
        for a in alarms:
            print(f"警報 / ALARM {a['label']} [{a['subject']}] {a['detail']}")
    return 0


def cmd_bench(args) -> int:
    from appliance.central.bench import run_bench
    result = run_bench(rows=args.rows, sites=args.sites, days=args.days,
                       concurrent=args.concurrent, lag_seconds=args.lag_seconds,
                       outage_hours=args.outage_hours, ingest_calls=args.ingest_calls,
                       work_dir=args.work_dir, progress=not args.json,
                       ingest_sites=args.ingest_sites)
    if args.json:
        json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
        print()
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


def cmd_demo(args) -> int:
    from appliance.central.demo import run_demo
    return run_demo(args)


def _staff(p) -> None:
    from appliance.cli.common import add_credentials
    add_credentials(p)


def register(sub) -> None:
    from appliance.cli import exports, holds, ledger, records, requests, retention, users
    p = sub.add_parser("central", help="通話記録センター (PostgreSQL) / the city archive: every "
                       "site's calls, one login, one search")
    p.set_defaults(central=True)
    csub = p.add_subparsers(dest="central_command", metavar="ACTION")
    csub.required = True

    i = csub.add_parser("init", help="センターの初期設定 (市の保管鍵, CA, 管理責任者) / initialise "
                        "the centre: city archive key, CA, first manager")
    i.add_argument("--manager", required=True, help="管理責任者の利用者名 / manager's user name")
    i.add_argument("--password-file", type=Path, required=True,
                   help="管理責任者のパスワードファイル / manager's password file")
    i.add_argument("--recovery-key-file", type=Path,
                   help="回復キーを画面でなくこのファイルに書く / write the recovery key here")
    i.set_defaults(func=cmd_init)

    s = csub.add_parser("serve", help="拠点の受信 (相互 TLS) と職員サービス / the sites' listener "
                        "(mutual TLS) and the staff service")
    s.add_argument("--sites-listen", metavar="HOST:PORT", help="default [central] sites_listen")
    s.add_argument("--web-listen", metavar="HOST:PORT", help="default [central] web_listen")
    s.add_argument("--http", action="store_true", help="職員サービスを HTTP で (ループバックのみ) / "
                   "staff service over plain HTTP, loopback only (tests, demo)")
    s.set_defaults(func=cmd_serve)

    site = csub.add_parser("site", help="拠点 / sites")
    ssub = site.add_subparsers(dest="site_command", metavar="ACTION")
    ssub.required = True
    a = ssub.add_parser("add", help="拠点を追加し登録トークンを発行 (管理責任者) / add a site and "
                        "issue its one-time enrolment token (manager)")
    a.add_argument("code", help="拠点コード (英小文字・数字・-) / site code, e.g. higashi")
    a.add_argument("--name", required=True, help="拠点名 / site name, e.g. 東庁舎")
    a.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    _staff(a)
    a.set_defaults(func=cmd_site_add)
    ls = ssub.add_parser("list", help="拠点の一覧 (職員) / list sites (staff)")
    ls.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    _staff(ls)
    ls.set_defaults(func=cmd_site_list)

    c = csub.add_parser("calls", help="全拠点の通話記録 (職員) / call records of every site (staff)")
    _staff(c)
    c.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    c.add_argument("--number", help="相手・自局番号で絞り込み / filter by telephone number")
    c.add_argument("--since", help="この日時以降 / from (ISO 8601; Japan time if no offset)")
    c.add_argument("--until", help="この日時より前 / before (ISO 8601)")
    c.add_argument("--site", help="拠点コードで絞り込み / only this site code")
    c.set_defaults(func=cmd_calls)
    sh = csub.add_parser("show", help="通話記録の詳細 (職員) / one call record (staff)")
    sh.add_argument("call_id", metavar="CALL_ID")
    _staff(sh)
    sh.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    sh.set_defaults(func=records.cmd_show)
    x = csub.add_parser("extract", help="センターの録音を複製 (職員, 根拠必須) / extract a recording "
                        "held at the centre (staff; names its ground)")
    x.add_argument("call_id", metavar="CALL_ID")
    x.add_argument("--out", type=Path, required=True, help="出力ファイル / output FILE.opus")
    x.add_argument("--ground", help="根拠 / ground (duty, law, investigation, mayor, disclosure)")
    x.add_argument("--reference", help="参照番号 / reference (document, case)")
    _staff(x)
    x.set_defaults(func=records.cmd_extract)

    st = csub.add_parser("status", help="拠点の受信状況と警報 (資格不要・番号なし) / sites' upload "
                         "state and alarms (no credential, no numbers)")
    st.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    st.set_defaults(func=cmd_status)

    b = csub.add_parser("bench", help="センターの性能測定 (専用の PostgreSQL を起動) / measure the "
                        "centre on a throwaway PostgreSQL")
    b.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    b.add_argument("--rows", type=int, default=10_000_000,
                   help="検索対象の通話数 / call rows to search (default %(default)s)")
    b.add_argument("--sites", type=int, default=50, help="拠点数 / sites (default %(default)s)")
    b.add_argument("--days", type=int, default=90, help="期間 (日) / days (default %(default)s)")
    b.add_argument("--concurrent", type=int, default=96,
                   help="遅延測定の同時通話数 / concurrent calls of the lag run (default %(default)s)")
    b.add_argument("--lag-seconds", type=float, default=30.0,
                   help="遅延測定の時間 / seconds of the lag run (default %(default)s)")
    b.add_argument("--outage-hours", type=float, default=0.5,
                   help="追いつき測定の停止時間 (最繁時の量) / outage whose backlog is drained, at "
                        "the busy hour's rate (default %(default)s; the ratio is linear)")
    b.add_argument("--ingest-calls", type=int, default=4000,
                   help="取込み測定の通話記録数 / call records of the ingest run (default %(default)s)")
    b.add_argument("--ingest-sites", type=int, default=4,
                   help="取込み測定で同時に送る拠点数 / sites sending at once in the ingest run "
                        "(default %(default)s)")
    b.add_argument("--work-dir", type=Path, default=None,
                   help="作業フォルダ (既定 /tmp) / where the throwaway cluster goes (default /tmp)")
    b.set_defaults(func=cmd_bench)

    d = csub.add_parser("demo", help="市の事例を実行: センターと2拠点 (東庁舎・大手事務所) / run "
                        "the seed's case: the centre and two simulated sites")
    d.add_argument("--dir", type=Path, default=Path("var/central-demo"),
                   help="デモのフォルダ (毎回作り直す) / the demo's folder, made anew each time "
                        "(default %(default)s)")
    d.add_argument("--web-listen", default="127.0.0.1:8090",
                   help="職員サービスのアドレス (ループバック) / the staff service's loopback "
                        "address (default %(default)s)")
    d.add_argument("--keep-running", action="store_true",
                   help="終了せず職員サービスを続ける (Ctrl-C で停止) / keep serving until Ctrl-C")
    d.set_defaults(func=cmd_demo)

    # the appliance's staff commands, unchanged, on the centre
    for module in (holds, requests, exports, ledger, users, retention):
        module.register(csub)

