"""dump/raw/<set>: any Kaldi dir (rates, flac, pipes, segments, odd text) -> 16 kHz files ESPnet reads."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import FSDD_RECORDINGS, need, tone, write_wav

from espnet_distill.data import dump
from espnet_distill.data.audio import load_utterance
from espnet_distill.data.kaldi_dir import validate_data_dir
from espnet_distill.data.tables import read_table


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "espnet_distill.bin.dump_data_dir", *args],
                          capture_output=True, text=True)


def write_dir(d: Path, wav: dict[str, str], text: dict[str, str], segments: dict[str, str] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    utts = sorted(text)
    (d / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in sorted(wav.items())))
    (d / "text").write_text("".join(f"{u} {text[u]}\n" for u in utts))
    (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    if segments:
        (d / "segments").write_text("".join(f"{u} {segments[u]}\n" for u in utts))
    return d


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Real 8 kHz FSDD speech, 44.1 kHz stereo flac, a sox pipe, a long, a short and an all-punctuation utterance."""
    need("sox")
    fsdd = FSDD_RECORDINGS / "3_george_0.wav"
    flac = tmp_path / "src/stereo.flac"
    flac.parent.mkdir(parents=True)
    sf.write(flac, tone(0.8, 44100, channels=2), 44100, format="FLAC")
    piped = write_wav(tmp_path / "src/piped.wav", 0.6, rate=22050)
    wav = {"a-fsdd": str(fsdd), "a-flac": str(flac), "b-pipe": f"sox {piped} -t wav - |",
           "b-long": str(write_wav(tmp_path / "src/long.wav", 3.0)),
           "c-short": str(write_wav(tmp_path / "src/short.wav", 0.05)),
           "c-punct": str(write_wav(tmp_path / "src/punct.wav", 0.5))}
    text = {"a-fsdd": "THREE.", "a-flac": "Hello, World!", "b-pipe": "  it's   \u201cquoted\u201d  ",
            "b-long": "long one", "c-short": "short", "c-punct": "?! ..."}
    return write_dir(tmp_path / "data/mixed", wav, text)


def run_dump(src: Path, out: Path, shards: int = 2, *finish_args: str) -> subprocess.CompletedProcess:
    for j in range(1, shards + 1):
        r = cli("audio", "--data-dir", str(src), "--out", str(out), "--shard", str(j), "--num-shards", str(shards))
        assert r.returncode == 0, r.stderr[-2000:]
    return cli("finish", "--data-dir", str(src), "--out", str(out), "--num-shards", str(shards), *finish_args)


@pytest.mark.slow
def test_training_set_is_resampled_normalised_and_filtered(mixed, tmp_path):
    out = tmp_path / "dump/mixed"
    r = run_dump(mixed, out, 2, "--max-seconds", "2", "--min-seconds", "0.1")
    assert r.returncode == 0, r.stderr[-2000:]
    assert ("kept 3 of 6 utterances (dropped 1 longer than 2 s, 1 shorter than 0.1 s, "
            "1 with empty text after normalisation)") in r.stderr
    assert read_table(out / "dropped").as_dict() == {"b-long": "too_long 3.000", "c-short": "too_short 0.050",
                                                      "c-punct": "empty_text 0.500"}
    assert read_table(out / "text").as_dict() == {"a-fsdd": "three", "a-flac": "hello world", "b-pipe": "it's quoted"}
    validate_data_dir(out)
    wav = read_table(out / "wav.scp").as_dict()
    durs = {u: float(v) for u, v in read_table(out / "utt2dur").items}
    for utt, path in wav.items():
        info = sf.info(path)  # a plain file ESPnet's sound reader opens
        assert info.samplerate == 16000
        assert info.channels == 1
        assert info.format == "FLAC"
        assert durs[utt] == pytest.approx(info.frames / 16000, abs=1e-4)
    assert durs["a-flac"] == pytest.approx(0.8, abs=1e-3)
    assert durs["b-pipe"] == pytest.approx(0.6, abs=1e-3)
    # the real speech keeps its waveform (16-bit quantisation aside)
    ours = load_utterance("a-fsdd", str(FSDD_RECORDINGS / "3_george_0.wav"))
    dumped, _ = sf.read(wav["a-fsdd"], dtype="float32")
    assert np.abs(ours - dumped).max() < 1e-3


def test_test_set_keeps_every_utterance(mixed, tmp_path):
    r = run_dump(mixed, tmp_path / "dump/test", 1, "--filter", "false")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "kept all 6 utterances (no filtering)" in r.stderr
    assert len(read_table(tmp_path / "dump/test/wav.scp").items) == 6
    assert read_table(tmp_path / "dump/test/text", allow_empty_value=True).as_dict()["c-punct"] == ""


def test_segments_are_cut_into_files(tmp_path):
    reco = tmp_path / "src/meeting.wav"
    reco.parent.mkdir()
    sf.write(reco, np.concatenate([tone(1.0, 8000, 300), tone(1.5, 8000, 600)]), 8000)
    src = write_dir(tmp_path / "data/seg", {"meeting": str(reco)}, {"s-1": "first part", "s-2": "second part"},
                    {"s-1": "meeting 0.0 1.0", "s-2": "meeting 1.0 2.5"})
    r = run_dump(src, tmp_path / "dump/seg", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    wav = read_table(tmp_path / "dump/seg/wav.scp").as_dict()
    assert sf.info(wav["s-1"]).frames == 16000
    assert sf.info(wav["s-2"]).frames == 24000
    assert not (tmp_path / "dump/seg/segments").exists()


@pytest.mark.slow
def test_lower_rate_writes_band_limited_copies_read_back_at_16k(tmp_path):
    src_wav = tmp_path / "src/two.wav"
    src_wav.parent.mkdir()
    sf.write(src_wav, tone(1.0, 16000, 1000) + tone(1.0, 16000, 6000), 16000)  # 6 kHz: above 8 kHz audio's band
    src = write_dir(tmp_path / "data/wide", {"u-1": str(src_wav)}, {"u-1": "Keep This."})
    out = tmp_path / "data/wide_8000hz"
    r = cli("audio", "--data-dir", str(src), "--out", str(out), "--rate", "8000")
    assert r.returncode == 0, r.stderr[-2000:]
    # finish takes the rate from what the audio job wrote: durations in seconds, not in 16 kHz samples
    r = cli("finish", "--data-dir", str(src), "--out", str(out), "--filter", "false", "--case", "keep",
            "--punctuation", "keep")
    assert r.returncode == 0, r.stderr[-2000:]
    path = read_table(out / "wav.scp").as_dict()["u-1"]
    assert sf.info(path).samplerate == 8000
    assert sf.info(path).frames == 8000
    assert read_table(out / "utt2dur").as_dict() == {"u-1": "1.0000"}
    assert read_table(out / "text").as_dict() == {"u-1": "Keep This."}
    x = load_utterance("u-1", path)  # our reader: back to 16 kHz, the 6 kHz tone gone, the 1 kHz one kept
    spec = np.abs(np.fft.rfft(x[2000:14000]))
    hz = np.fft.rfftfreq(12000, 1 / 16000)
    assert len(x) == 16000
    assert spec[np.abs(hz - 6000) < 50].max() < 0.01 * spec[np.abs(hz - 1000) < 50].max()
    r = cli("audio", "--data-dir", str(src), "--out", str(tmp_path / "x"), "--rate", "48000")
    assert r.returncode == 1
    assert "rate must be in 1000..16000" in r.stderr
    # a resumed job asked for another rate than the files already there: refused, nothing mixed
    r = cli("audio", "--data-dir", str(src), "--out", str(out))
    assert r.returncode == 1
    assert "written at 8000 Hz by an earlier run, this one asks for 16000 Hz" in r.stderr
    assert sf.info(path).samplerate == 8000


def test_killed_audio_job_resumes_and_keeps_finished_files(mixed, tmp_path):
    out = tmp_path / "dump/mixed"
    assert cli("audio", "--data-dir", str(mixed), "--out", str(out)).returncode == 0
    files = sorted((out / "audio/1").glob("*.flac"))
    assert len(files) == 6
    files[0].unlink()  # as if the job died before writing it
    (out / "parts/utt2num_samples.1").unlink()
    before = {f: f.stat().st_mtime_ns for f in files[1:]}
    r = cli("audio", "--data-dir", str(mixed), "--out", str(out))
    assert r.returncode == 0
    assert "5 of 6 utterances already written" in r.stderr
    assert files[0].is_file()
    assert all(f.stat().st_mtime_ns == t for f, t in before.items())


@pytest.mark.slow
def test_missing_shard_and_bad_audio_are_named(mixed, tmp_path):
    out = tmp_path / "dump/mixed"
    assert cli("audio", "--data-dir", str(mixed), "--out", str(out), "--shard", "1", "--num-shards",
               "2").returncode == 0
    r = cli("finish", "--data-dir", str(mixed), "--out", str(out), "--num-shards", "2")
    assert r.returncode == 1
    assert "parts/utt2num_samples.2 is missing" in r.stderr
    assert not (out / "wav.scp").exists()
    bad = write_dir(tmp_path / "data/bad", {"x-1": "false |"}, {"x-1": "text"})
    r = cli("audio", "--data-dir", str(bad), "--out", str(tmp_path / "dump/bad"))
    assert r.returncode == 1
    assert "utterance 'x-1': pipe command failed" in r.stderr


def test_audio_names_are_safe_file_names():
    assert dump.audio_name("a/b%c", "flac") == "a%2Fb%25c.flac"
