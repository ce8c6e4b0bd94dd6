"""A data dir's utterances: one reader for plain and segmented dirs, errors that point at the lines."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import segmented_dir

from espnet_distill.data.audio import AudioError, load_utterance
from espnet_distill.data.dataset import AudioDataset
from espnet_distill.data.utterances import DataDirAudio


def test_segments_read_once_per_recording_equal_each_utterance_read_alone(tmp_path):
    d = segmented_dir(tmp_path, {"u1": (0.0, 1.0), "u2": (0.5, 2.0), "u3": (2.0, 3.0)})
    audio = DataDirAudio(d)
    together = dict(audio.iter())
    assert list(together) == ["u1", "u2", "u3"]
    rec = (tmp_path / "d_rec.wav").as_posix()
    for utt, (a, b) in {"u1": (0.0, 1.0), "u2": (0.5, 2.0), "u3": (2.0, 3.0)}.items():
        alone = audio.load(utt)
        assert np.array_equal(alone, together[utt])
        assert np.array_equal(alone, load_utterance(utt, rec, (a, b)))
        assert len(alone) == int(round((b - a) * 16000))
    ds = AudioDataset(d, max_seconds=None, min_samples=1)
    assert np.array_equal(ds[ds.utts.index("u2")]["wav"], together["u2"])  # the dataset reads through it too


def test_a_bad_segment_names_both_lines(tmp_path):
    d = segmented_dir(tmp_path, {"u1": (0.0, 1.0), "u2": (2.5, 4.0)})
    with pytest.raises(AudioError, match=r"utterance 'u2': segment 2.5-4.0 s is outside .*wav.scp:1, .*segments:2\]"):
        DataDirAudio(d).load("u2")
    with pytest.raises(AudioError, match="segments:2"):
        list(DataDirAudio(d).iter())
