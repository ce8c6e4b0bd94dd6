"""wav.scp entries -> 16 kHz mono float32, with errors naming the utterance and entry."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from helpers import need, tone, write_wav

from espnet_distill.data.audio import AudioError, load_utterance


def test_stereo_44k_is_converted(tmp_path):
    p = write_wav(tmp_path / "st.wav", 1.0, rate=44100, channels=2)
    x = load_utterance("u1", str(p))
    assert x.dtype == np.float32
    assert x.ndim == 1
    assert len(x) == 16000
    ref = tone(1.0, 16000)
    assert np.abs(x[200:-200] - ref[200:-200]).max() < 0.01  # a 440 Hz tone survives resampling


def test_flac_8k(tmp_path):
    p = tmp_path / "a.flac"
    sf.write(p, tone(0.5, 8000), 8000, format="FLAC")
    assert len(load_utterance("u1", str(p))) == 8000


def test_pipe_entry_and_segment(tmp_path):
    need("sox")
    p = write_wav(tmp_path / "a.wav", 2.0, rate=22050)
    x = load_utterance("u1", f"sox {p} -t wav - |")
    assert len(x) == 32000
    seg = load_utterance("u1", f"sox {p} -t wav - |", segment=(0.5, 1.5))
    assert len(seg) == 16000
    with pytest.raises(AudioError, match=r"utterance 'u1': segment 1.5-3.0 s is outside the recording"):
        load_utterance("u1", str(p), segment=(1.5, 3.0))


def test_failing_pipe_names_utterance(tmp_path):
    with pytest.raises(AudioError, match=r"utterance 'bad-1': pipe command failed with exit code 2: .*nosuchfile"):
        load_utterance("bad-1", f"sox {tmp_path}/nosuchfile.wav -t wav - |")


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match=r"utterance 'u9': file not found: '.*/none.wav'"):
        load_utterance("u9", str(tmp_path / "none.wav"))


def test_kaldi_ark_entry(tmp_path):
    import kaldiio

    ark = tmp_path / "wav.ark"
    samples = (tone(0.25) * 32767).astype(np.int16)
    with kaldiio.WriteHelper(f"ark,scp:{ark},{tmp_path / 'wav_ark.scp'}") as w:
        w("u1", (16000, samples))
    entry = (tmp_path / "wav_ark.scp").read_text().split()[1]
    x = load_utterance("u1", entry)
    assert len(x) == 4000
    assert abs(float(x.max()) - 0.3) < 1e-3
