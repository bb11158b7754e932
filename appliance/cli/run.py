"""``appliance run``: the appliance's main job."""

from __future__ import annotations

from appliance.clock import FakeClock, SystemClock
from appliance.config import load_config
from appliance.store.datadir import DataDir



def cmd_run(args) -> int:
    from appliance.engine.recorder import CallRecorder, recover_interrupted
    from appliance.engine.synthetic import two_leg_frames

    # --fast runs on simulated time: the call's times and duration stay true to its audio
    clock = FakeClock(SystemClock().now()) if args.fast else SystemClock()
    config = load_config(args.config)
    dd = DataDir(args.data_dir)
    catalog = dd.open_catalog(clock.now())
    with catalog:
        for cid in recover_interrupted(dd, catalog, clock.now()):
            print(f"中断された録音を閉じました / closed interrupted recording {cid} as truncated",
                  flush=True)
        recorder = CallRecorder(dd, catalog, config.site.name, config.encoder)
        started = clock.now()
        rec = recorder.start("T1", 1, "in", started)
        rec.mark_answered(started)
        print(f"録音開始 / recording {rec.call_id} (T1 channel 1, {args.demo_seconds:g} s synthetic "
              f"two-leg call{', fast' if args.fast else ''})", flush=True)
        t0 = clock.monotonic()
        for i, (far, near) in enumerate(two_leg_frames(args.demo_seconds)):
            clock.sleep_until(t0 + (i + 1) * 0.02)
            rec.write(far, near)
        # the synthetic call carries no caller ID signal: no number to claim
        fields = rec.finish(clock.now(), answered_at=started,
                            number_absent_reason="unavailable", notice="none")
        print(f"録音終了 / recorded {rec.call_id}: {fields['recorded_s']:.1f} s, "
              f"{fields['size']} bytes", flush=True)
    return 0


def register(sub) -> None:
    p = sub.add_parser("run", help="録音装置の主処理 / the appliance's main job")
    p.add_argument("--fast", action="store_true",
                   help="実時間を待たずに処理 / run as fast as possible, then exit")
    p.add_argument("--demo-seconds", type=float, default=8.0,
                   help="合成通話の長さ / length of the built-in synthetic call (default %(default)s)")
    p.set_defaults(func=cmd_run)
