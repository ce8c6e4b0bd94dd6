"""Training examples: over-long utterances cropped (as s3prl does) or dropped, crops that are the
same on resume and move with the epoch, frame targets that follow the crop."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import make_data_dir

from espnet_distill.data.audio import FRAME_HOP
from espnet_distill.data.dataset import AudioDataset, collate


@pytest.fixture
def dirs(tmp_path):
    """8 utterances of 0.3 s .. 1.0 s of noise (a tone repeats itself: a crop's start could not be found)."""
    import soundfile as sf

    d = make_data_dir(tmp_path, {f"s-{i}": ("s", "a") for i in range(8)})
    rng = np.random.default_rng(0)
    for i in range(8):
        sf.write(tmp_path / "wav" / f"s-{i}.wav", rng.uniform(-0.5, 0.5, int(16000 * (0.3 + 0.1 * i))), 16000,
                 subtype="PCM_16")
    return d


def test_long_utterances_are_cropped_with_a_fixed_window_per_epoch(dirs):
    cropped = AudioDataset(dirs, max_seconds=0.5, long_utts="crop", seed=1)
    dropped = AudioDataset(dirs, max_seconds=0.5, long_utts="drop")
    assert len(cropped) == 8
    assert len(dropped) == 3  # 0.3, 0.4, 0.5 s stay
    assert max(cropped.samples) == 8000
    full = AudioDataset(dirs)
    i = cropped.utts.index("s-7")  # 1.0 s
    whole = full[full.utts.index("s-7")]["wav"]
    starts = []
    for epoch in range(4):
        cropped.epoch = epoch
        wav = cropped[i]["wav"]
        assert len(wav) == 8000
        start = next(s for s in range(0, len(whole) - 8000 + 1, FRAME_HOP) if np.array_equal(whole[s:s + 8000], wav))
        starts.append(start)
        again = AudioDataset(dirs, max_seconds=0.5, long_utts="crop", seed=1)
        again.epoch = epoch
        assert np.array_equal(again[i]["wav"], wav)  # a resumed run (or another process) crops the same
    assert len(set(starts)) > 1  # the window moves from epoch to epoch
    assert collate([cropped[j] for j in range(8)])["wav"].shape == (8, 8000)
    with pytest.raises(ValueError, match="long_utts 'cut': expected drop or crop"):
        AudioDataset(dirs, max_seconds=0.5, long_utts="cut")


def test_frame_targets_follow_the_crop(dirs):
    labels = {u: np.arange(60) for u in AudioDataset(dirs).utts}  # label = frame index
    ds = AudioDataset(dirs, {"km": labels}, max_seconds=0.5, long_utts="crop", seed=4)
    full = AudioDataset(dirs)
    for epoch in range(3):
        ds.epoch = epoch
        item = ds[ds.utts.index("s-7")]
        whole = full[full.utts.index("s-7")]["wav"]
        start = next(s for s in range(0, len(whole), FRAME_HOP) if np.array_equal(whole[s:s + 8000], item["wav"]))
        assert item["km"][0] == start // FRAME_HOP


def test_a_stale_utt2dur_is_a_data_dir_error_naming_the_file(dirs):
    from espnet_distill.data.tables import DataDirError

    utt2dur = dirs / "utt2dur"
    AudioDataset(dirs)  # writes utt2dur where it is missing
    utt2dur.write_text("".join(x for x in utt2dur.read_text().splitlines(keepends=True) if not x.startswith("s-3 ")))
    with pytest.raises(DataDirError, match=r"utt2dur: no duration for utterance 's-3' \(stale file\? rerun "):
        AudioDataset(dirs)
    with pytest.raises(DataDirError, match=r"no utterance left after filtering \(3 in the dir\)"):
        AudioDataset(dirs, max_seconds=0.1, utts=["s-0", "s-1", "s-2"])
