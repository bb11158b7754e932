"""Two-leg Ogg Opus: a standard file, legs kept apart, exact timing, cut files recovered."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import opuslib_next
import pytest

from appliance.errors import OggError
from appliance.store import ogg
from appliance.store.opus import EncoderSettings, OggOpusWriter, read_recording

TAGS = {"CALL_ID": "20260105T083000-T1c1-abcdef", "SITE": "東庁舎", "TRUNK": "T1",
        "DATE": "2026-01-05T08:30:00+09:00"}


def encode(far: np.ndarray, near: np.ndarray, settings=EncoderSettings(), serial=42) -> bytes:
    w = OggOpusWriter(serial, TAGS, settings)
    out = [w.flush()]
    for i in range(0, len(far), 160):
        out.append(w.write(far[i:i + 160], near[i:i + 160]))
    out.append(w.close())
    return b"".join(out)


def aligned_stats(decoded: np.ndarray, source: np.ndarray) -> tuple[int, float]:
    """(lag in samples, correlation at that lag) of decoded against source."""
    a, s = decoded.astype(float), source.astype(float)
    lags = range(-40, 41)
    best = max(lags, key=lambda lag: float(np.dot(np.roll(a, lag), s)))
    return best, float(np.corrcoef(np.roll(a, best), s)[0, 1])


@pytest.fixture
def speech_call(speech_8k):
    """Speech on the far leg; the near leg says the same backwards, half as loud."""
    far = speech_8k
    near = (speech_8k[::-1] // 2).astype(np.int16)
    return far, near, encode(far, near)


def test_opusinfo_accepts_the_file(tmp_path, speech_call):
    assert shutil.which("opusinfo"), "opus-tools is required (tools/bootstrap.sh test)"
    path = tmp_path / "call.opus"
    path.write_bytes(speech_call[2])
    res = subprocess.run(["opusinfo", str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Channels: 2" in res.stdout
    assert "Original sample rate: 8000" in res.stdout
    assert "Streams: 2, Coupled: 0" in res.stdout
    assert "CALL_ID=20260105T083000-T1c1-abcdef" in res.stdout


def test_each_leg_decodes_back_to_its_own_channel(speech_call):
    far, near, data = speech_call
    rec = read_recording(data)
    assert len(rec.far) == len(far) and len(rec.near) == len(near)
    lag_far, corr_far = aligned_stats(rec.far, far)
    lag_near, corr_near = aligned_stats(rec.near, near)
    # pre-skip removed exactly: no delay between source and decoded audio
    assert abs(lag_far) <= 1 and abs(lag_near) <= 1
    assert corr_far > 0.9 and corr_near > 0.9
    # and not swapped: the far channel does not resemble the near source
    assert abs(aligned_stats(rec.far, near)[1]) < 0.3


@pytest.mark.parametrize("bitrate", [8000, 16000, 24000])
def test_legs_stay_separate_at_least_40_db(speech_8k, bitrate):
    silence = np.zeros_like(speech_8k)
    for far, near, loud, quiet in ((speech_8k, silence, "far", "near"),
                                   (silence, speech_8k, "near", "far")):
        rec = read_recording(encode(far, near, EncoderSettings(bitrate_per_leg=bitrate)))
        p_loud = np.mean(getattr(rec, loud).astype(float) ** 2)
        p_quiet = np.mean(getattr(rec, quiet).astype(float) ** 2) + 1e-3
        assert 10 * np.log10(p_loud / p_quiet) >= 40, (bitrate, loud)


def test_header_granules_and_page_schedule(speech_8k):
    data = encode(speech_8k, speech_8k)
    pages = ogg.scan_pages(data, strict=True).pages
    head, tags, audio = pages[0], pages[1], pages[2:]
    assert head.bos and head.granule == 0 and head.packets[0].startswith(b"OpusHead")
    assert tags.granule == 0 and tags.packets[0].startswith(b"OpusTags")
    rec = read_recording(data)
    enc = opuslib_next.MultiStreamEncoder(8000, 2, 2, 0, [0, 1], "voip")
    assert rec.pre_skip == enc.lookahead * 6     # look-ahead at 48 kHz
    assert rec.input_rate == 8000
    assert rec.tags["SITE"] == "東庁舎" and rec.tags["DATE"] == TAGS["DATE"]
    packets = 0
    for page in audio[:-1]:
        packets += len(page.packets)
        assert page.granule == packets * 960          # 20 ms packets at 48 kHz
        assert len(page.packets) <= 50                # a page at least once a second
        assert not page.eos
    last = audio[-1]
    assert last.eos
    # the EOS granule trims the closing padding frame: exactly the input length
    assert last.granule == rec.pre_skip + len(speech_8k) * 6
    assert [p.sequence for p in pages] == list(range(len(pages)))


def test_page_interval_is_configurable(speech_8k):
    data = encode(speech_8k, speech_8k, EncoderSettings(frames_per_page=10))
    audio = ogg.scan_pages(data, strict=True).pages[2:]
    assert max(len(p.packets) for p in audio) == 10


def test_encoder_settings_are_validated():
    with pytest.raises(ValueError):
        EncoderSettings(complexity=11)
    with pytest.raises(ValueError):
        EncoderSettings(frames_per_page=51)      # would break "a page every second"
    with pytest.raises(ValueError):
        EncoderSettings(bitrate_per_leg=1000)


def test_short_frames_are_refused_before_libopus_reads_past_them():
    w = OggOpusWriter(1, {})
    with pytest.raises(ValueError):
        w.write(np.zeros(100, np.int16), np.zeros(160, np.int16))


def test_cut_file_recovers_every_complete_page(speech_8k):
    data = encode(speech_8k, speech_8k)
    pages = ogg.scan_pages(data, strict=True).pages
    whole = read_recording(data)
    assert not whole.truncated
    step = max(1, len(data) // 300)
    for cut in list(range(pages[2].offset, len(data), step)) + [len(data) - 1]:
        rec = read_recording(data[:cut])
        assert rec.truncated
        complete_audio_pages = [p for p in pages[2:] if p.offset + p.length <= cut]
        n_packets = sum(len(p.packets) for p in complete_audio_pages)
        expected = max(0, n_packets * 160 - whole.pre_skip // 6)
        assert len(rec.far) == expected, cut
        # what was recovered is the same audio, sample for sample
        assert np.array_equal(rec.far, whole.far[:expected])


@pytest.mark.parametrize("data, message", [
    (b"", "not an Ogg"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt ", "not an Ogg"),
    (b"OggS\x00\x02", "truncated header"),
])
def test_bad_input_gets_a_clear_error(data, message):
    with pytest.raises(OggError, match=message):
        read_recording(data)


def test_truncated_header_is_reported(speech_8k):
    data = encode(speech_8k[:1600], speech_8k[:1600])
    second_page = ogg.scan_pages(data).pages[1]
    with pytest.raises(OggError, match="truncated header"):
        read_recording(data[:second_page.offset + 10])


def test_ogg_that_is_not_a_two_leg_recording_is_refused():
    head = b"OpusHead" + bytes([1, 1]) + (312).to_bytes(2, "little") + (8000).to_bytes(4, "little") + b"\0\0\0"
    data = ogg.build_page([head], serial=1, sequence=0, granule=0, bos=True)
    with pytest.raises(OggError, match="two-leg"):
        read_recording(data + ogg.build_page([b"OpusTags"], serial=1, sequence=1, granule=0))
