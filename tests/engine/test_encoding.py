"""The period encoder (both cores) produces exactly the Ogg bytes of encoding on the spot."""

from __future__ import annotations

from datetime import UTC, datetime

from appliance.engine.encoding import PeriodEncoder
from appliance.engine.synthetic import two_leg_frames
from appliance.store.sealed import open_sealed
from appliance.store.recording import CallTags, RecordingEncoder


class _Rec:
    """What PeriodEncoder needs of a recording: its encoder and a place for packets."""

    def __init__(self, i: int) -> None:
        self.encoder = _encoder(i)
        self.out: list[bytes] = [self.encoder.start()]

    def _deliver(self, packet: bytes) -> None:
        self.out.append(self.encoder.add_packet(packet))


def _encoder(i: int) -> RecordingEncoder:
    tags = CallTags(f"call-{i}", "site", f"T{i}", 1, datetime(2026, 1, 5, tzinfo=UTC))
    return RecordingEncoder(tags, f"{i:02d}", bytes([i]) * 32)


def test_split_encoding_is_byte_identical_to_inline():
    calls = 9                     # odd, and above the split threshold
    frames = [list(two_leg_frames(3.0, seed=i)) for i in range(calls)]
    inline = []
    for i in range(calls):
        enc = _encoder(i)
        out = [enc.start()] + [enc.write(f, n) for f, n in frames[i]] + [enc.close()]
        inline.append(b"".join(out))
    pool = PeriodEncoder()
    recs = [_Rec(i) for i in range(calls)]
    for k in range(len(frames[0])):
        for i, rec in enumerate(recs):
            rec.encoder.stage(*frames[i][k])
            pool.add(rec)
        pool.run()
    pool.close()
    pool.close()                  # idempotent
    for i, rec in enumerate(recs):
        # sealing starts from a random stream header: compare what the chunks hold
        split = open_sealed(b"".join(rec.out + [rec.encoder.close()]), bytes([i]) * 32)
        alone = open_sealed(inline[i], bytes([i]) * 32)
        assert split.complete and split.payload == alone.payload
        assert split.samples == alone.samples


def test_removed_recordings_are_not_encoded():
    pool = PeriodEncoder()
    recs = [_Rec(i) for i in range(5)]
    frame = next(two_leg_frames(0.02))
    for rec in recs:
        rec.encoder.stage(*frame)
        pool.add(rec)
    pool.remove(recs[2])
    pool.run()
    assert [len(r.out) for r in recs] == [2, 2, 1, 2, 2]
    pool.close()
