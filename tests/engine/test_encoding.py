"""The period encoder: batched, on both cores, and exactly the bytes of encoding on the spot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.engine.encoding import PeriodEncoder
from appliance.engine.recorder import CallRecorder
from appliance.engine.synthetic import two_leg_frames
from appliance.engine.writer import AppendJob, FinishJob
from appliance.store.datadir import DataDir
from appliance.store.opus import EncoderSettings
from appliance.store.recording import CallTags, RecordingEncoder
from appliance.store.sealed import open_sealed

T0 = datetime(2026, 1, 5, tzinfo=UTC)


class _Rec:
    """What PeriodEncoder needs of a recording: an encoder, a slot, a place for packets."""

    def __init__(self, i: int, pool: PeriodEncoder, settings: EncoderSettings) -> None:
        self.encoder = _encoder(i, settings)
        self.out: list[bytes] = [self.encoder.start()]
        self.slot = pool.next_slot()
        self._queued = False

    def write(self, pool: PeriodEncoder, far, near) -> None:
        if self.encoder.stage_full:
            pool.remove(self)
            self._deliver(self.encoder.encode_staged())
        if (self.encoder.stage(far, near) or pool.due(self.slot)) and not self._queued:
            self._queued = True
            pool.add(self)

    def _deliver(self, packets: list[bytes]) -> None:
        self._queued = False
        for p in packets:
            self.out.append(self.encoder.add_packet(p))


def _encoder(i: int, settings: EncoderSettings = EncoderSettings()) -> RecordingEncoder:
    tags = CallTags(f"call-{i}", "site", f"T{i}", 1, T0)
    return RecordingEncoder(tags, f"{i:02d}", bytes([i]) * 32, settings)


@pytest.mark.parametrize("per_encode,helpers", [(1, 1), (3, 1), (5, 1), (5, 3), (2, 8)])
def test_batched_split_encoding_is_byte_identical_to_inline(per_encode, helpers):
    calls = 9                     # odd, and above the split threshold
    settings = EncoderSettings(frames_per_encode=per_encode)
    frames = [list(two_leg_frames(3.0, seed=i)) for i in range(calls)]
    inline = []
    for i in range(calls):
        enc = _encoder(i, settings)
        out = [enc.start()] + [enc.write(f, n) for f, n in frames[i]] + [enc.close()]
        inline.append(b"".join(out))
    pool = PeriodEncoder(per_encode, helpers)
    recs = [_Rec(i, pool, settings) for i in range(calls)]
    for k in range(len(frames[0])):
        for i, rec in enumerate(recs):
            rec.write(pool, *frames[i][k])
        pool.run()
    for rec in recs:                 # a hang-up: what is still staged is encoded now
        rec._deliver(rec.encoder.encode_staged())
    pool.close()
    pool.close()                  # idempotent
    for i, rec in enumerate(recs):
        # sealing starts from a random stream header: compare what the chunks hold
        split = open_sealed(b"".join(rec.out + [rec.encoder.close()]), bytes([i]) * 32)
        alone = open_sealed(inline[i], bytes([i]) * 32)
        assert split.complete and split.payload == alone.payload
        assert split.samples == alone.samples


def test_the_work_is_cut_into_runs_of_about_equal_frames():
    cuts = PeriodEncoder._cuts([5] * 12, 3)
    assert cuts == [0, 4, 8, 12]
    cuts = PeriodEncoder._cuts([1, 1, 1, 1, 5, 5, 5], 2)
    assert cuts[0] == 0 and cuts[-1] == 7 and cuts == sorted(cuts)
    # every recording is in exactly one run, in order
    for counts in ([3], [1, 9], [5] * 7, [2, 1, 5, 5, 1, 3, 4]):
        for parts in range(1, len(counts) + 1):
            cuts = PeriodEncoder._cuts(counts, parts)
            assert len(cuts) == parts + 1 and cuts[0] == 0 and cuts[-1] == len(counts)
            assert cuts == sorted(cuts)


def test_a_helper_error_reaches_the_capture_thread_and_the_helpers_go_on():
    pool = PeriodEncoder(1, 2)
    settings = EncoderSettings(frames_per_encode=1)
    recs = [_Rec(i, pool, settings) for i in range(6)]
    frame = next(two_leg_frames(0.02))

    def broken():
        ogg = recs[5].encoder._ogg           # as the real one does when libopus fails
        ogg.staged, ogg.stage_full = 0, False
        raise RuntimeError("codec fault")

    for rec in recs:
        rec.write(pool, *frame)
    real = recs[5].encoder.encode_staged
    recs[5].encoder.encode_staged = broken           # the last run: a helper's
    with pytest.raises(RuntimeError):
        pool.run()
    recs[5].encoder.encode_staged = real
    for rec in recs:
        rec.write(pool, *frame)
    pool.run()                                       # the next period works
    # the others lost nothing: a packet in each period
    assert [len(r.out) for r in recs[:5]] == [3, 3, 3, 3, 3]
    assert len(recs[5].out) == 2
    pool.close()


def test_removed_recordings_are_not_encoded():
    pool = PeriodEncoder()
    settings = EncoderSettings(frames_per_encode=1)
    recs = [_Rec(i, pool, settings) for i in range(5)]
    frame = next(two_leg_frames(0.02))
    for rec in recs:
        rec.write(pool, *frame)
    pool.remove(recs[2])
    pool.run()
    assert [len(r.out) for r in recs] == [2, 2, 1, 2, 2]
    pool.close()


def test_staging_refuses_a_frame_it_has_no_room_for():
    enc = _encoder(1, EncoderSettings(frames_per_encode=2))
    f, n = next(two_leg_frames(0.02))
    assert enc.stage(f, n) is False
    assert enc.stage(f, n) is True          # full: due now
    with pytest.raises(ValueError):
        enc.stage(f, n)
    assert len(enc.encode_staged()) == 2 and enc.staged == 0


class _Jobs:
    """The writer's edge: keeps every job with the period it was handed over in."""

    def __init__(self) -> None:
        self.jobs: list = []
        self.period = 0

    def has_room(self) -> bool:
        return True

    def submit(self, job) -> None:
        self.jobs.append((self.period, job))

    submit_audio = submit


def _run_calls(datadir, per_encode: int, calls: int, seconds: float, stagger: int):
    """Real recordings through the real recorder; calls start ``stagger`` periods apart."""
    dd = DataDir(datadir)
    catalog = dd.open_catalog(T0)
    sink = _Jobs()
    settings = EncoderSettings(frames_per_encode=per_encode)
    recorder = CallRecorder(dd, catalog, "site", settings, sink)
    pool = PeriodEncoder(per_encode)
    recorder.batch = pool
    frames = list(two_leg_frames(seconds, seed=3))
    recs, ids, per_period = [], [], []
    end = (calls - 1) * stagger + len(frames)
    for p in range(end):
        sink.period = p
        if p % max(stagger, 1) == 0 and len(recs) < calls and (stagger or p == 0):
            for _ in range(calls if stagger == 0 else 1):
                recs.append((p, recorder.start(f"T{len(recs)}", 1, "in", T0 + timedelta(seconds=p / 50))))
                ids.append(recs[-1][1].call_id)
        for start, rec in recs:
            k = p - start
            if 0 <= k < len(frames):
                rec.write(*frames[k])
                if k == len(frames) - 1:
                    rec.finish(T0 + timedelta(seconds=(p + 1) / 50))
        before = sum(r.encoder.staged for _, r in recs if r.encoder is not None)
        pool.run()
        after = sum(r.encoder.staged for _, r in recs if r.encoder is not None)
        per_period.append(before - after)
    pool.close()
    catalog.close()
    timeline = {cid: [(p, len(j.data)) for p, j in sink.jobs
                      if isinstance(j, (AppendJob, FinishJob)) and j.call_id == cid] for cid in ids}
    return [timeline[cid] for cid in ids], per_period


def test_batching_moves_no_page_and_spreads_the_work(datadir):
    # every sealed chunk (a page) reaches the writer in the same period and with
    # the same size as when each frame is encoded in its own period
    one, _ = _run_calls(datadir, 1, calls=7, seconds=4.0, stagger=3)
    five, _ = _run_calls(datadir, 5, calls=7, seconds=4.0, stagger=3)
    assert five == one
    assert all(len(t) >= 5 for t in one)           # several pages a call
    # 40 calls answered in the same period: the slots spread their encoding
    _, load = _run_calls(datadir, 5, calls=40, seconds=3.0, stagger=0)
    steady = load[45:140]
    mean = sum(steady) / len(steady)
    assert mean == 40
    # even in every period but the few after the calls complete their pages
    # together (each call encodes what it has staged then, so that no page
    # waits, and is lighter until its slot comes round again) ...
    uneven = [p for p in range(45, 140) if load[p] != mean]
    assert uneven and all((p - 39) % 40 < 5 for p in uneven)
    assert len(uneven) <= 2 * 5
    # ... and never more than one batch a call
    assert max(load) <= 5 * 40
    # the rest (under a batch a call) was encoded by the hang-ups themselves
    assert 40 * 150 - 40 * 4 <= sum(load) < 40 * 150
