"""``appliance enrol`` and ``appliance replicate``: the appliance's side of the city archive."""

from __future__ import annotations

import json
import signal
import sys
import threading

from appliance.clock import SystemClock
from appliance.config import load_config
from appliance.errors import ConfigError


def cmd_enrol(args) -> int:
    from appliance.cli.common import open_session
    from appliance.replication.enrol import enrol_site
    with open_session(args) as session:
        result = enrol_site(session, args.url, args.token, SystemClock().now())
    if args.json:
        json.dump(result, sys.stdout, ensure_ascii=False, indent=1)
        print()
        return 0
    print(f"登録しました / enrolled as {result['site']} ({result['site_name']}) at "
          f"{result['centre']}")
    print(f"保管鍵を市の鍵に切り替えました / archive key is now the city's "
          f"({result['archive_key_new'][:16]}…); 既存のデータ鍵 {result['resealed_keys']} 件を再封緘 "
          f"/ re-sealed {result['resealed_keys']} existing data key(s)")
    print(f"送信待ち {result['queued']} 件 / {result['queued']} item(s) queued for the centre")
    print("録音サービスを再起動してください / restart appliance-recorder (it reads the archive "
          "key at start); appliance-replication sends the queue")
    return 0


def cmd_replicate(args) -> int:
    from appliance.ops.alarms import AlarmRegistry
    from appliance.replication import Outbox
    from appliance.replication.link import load_link
    from appliance.replication.sender import ReplicationSettings, Sender
    from appliance.store.datadir import DataDir

    dd = DataDir(args.data_dir)
    dd.require()
    link = load_link(dd.root)
    if link is None:
        raise ConfigError("この装置はセンターに登録されていません / not enrolled: run "
                          "'appliance enrol URL --token T' first")
    config = load_config(args.config)
    settings = ReplicationSettings.from_config(config.raw.get("replication"))
    clock = SystemClock()
    with dd.open_catalog(clock.now()) as catalog, Outbox.open(dd.root, clock.now) as outbox, \
            dd.open_catalog(clock.now()) as alarm_catalog:
        sender = Sender(dd, link, outbox, catalog, clock.now, settings,
                        AlarmRegistry(alarm_catalog, clock.now, actor="replication"))
        main = threading.current_thread() is threading.main_thread()
        if main:
            signal.signal(signal.SIGTERM, lambda *_: sender.stop.set())
        print(f"送信開始 / replicating to {link.url} as {link.site}", flush=True)
        try:
            sender.run(until_empty=args.until_empty)
        except KeyboardInterrupt:
            pass
        finally:
            sender.close()
        st = sender.stats
        print(f"送信終了 / stopped: {st.batches} batches, {st.items} items, {st.bytes} bytes, "
              f"{st.failures} failures, {st.refusals} refusals; {outbox.count()} queued",
              flush=True)
    return 0


def register(sub) -> None:
    from appliance.cli.common import add_credentials
    p = sub.add_parser("enrol", help="センターへ登録 (管理責任者の同意) / enrol this appliance in the "
                       "city archive (the site manager's consent)")
    p.add_argument("url", metavar="URL", help="センターの拠点受信 / the centre, https://HOST:PORT")
    p.add_argument("--token", required=True, help="センターで発行された登録トークン / the "
                   "one-time token made at the centre")
    p.add_argument("--json", action="store_true", help="JSON で出力 / JSON output")
    add_credentials(p)
    p.set_defaults(func=cmd_enrol)
    r = sub.add_parser("replicate", help="送信待ちキューをセンターへ送る (サービス) / send the "
                       "outbox to the centre (the service)")
    r.add_argument("--until-empty", action="store_true",
                   help="キューが空になったら終了 / exit once the outbox is empty")
    r.set_defaults(func=cmd_replicate)
