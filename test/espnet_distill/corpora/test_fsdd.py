"""FSDD (real speech from test/data, 8 kHz) to speaker-independent Kaldi dirs read at 16 kHz."""
from __future__ import annotations

import shutil

import pytest
import soundfile as sf
from helpers import FSDD_RECORDINGS

from espnet_distill.corpora.fsdd import FSDDError, prepare
from espnet_distill.data.dataset import AudioDataset
from espnet_distill.data.kaldi_dir import validate_data_dir
from espnet_distill.data.tables import read_table


@pytest.fixture
def small_fsdd(tmp_path):
    d = tmp_path / "recordings"
    d.mkdir()
    for spk in ("jackson", "theo", "george"):
        for digit in (0, 7):
            for take in (0, 1):
                shutil.copy(FSDD_RECORDINGS / f"{digit}_{spk}_{take}.wav", d)
    return d


def test_speaker_independent_split_read_at_16k(small_fsdd, tmp_path):
    counts = prepare(small_fsdd, tmp_path / "data",
                     {"train": ["jackson", "theo"], "test": ["george"]})
    assert counts == {"train": 8, "test": 4}
    for s in ("train", "test"):
        validate_data_dir(tmp_path / "data" / s)
    text = read_table(tmp_path / "data/test/text").as_dict()
    assert text == {"george-0_00": "zero", "george-0_01": "zero", "george-7_00": "seven", "george-7_01": "seven"}
    spks = set(read_table(tmp_path / "data/train/utt2spk").as_dict().values())
    assert spks == {"jackson", "theo"}
    utt, wav = read_table(tmp_path / "data/train/wav.scp").items[0]
    assert sf.info(wav).samplerate == 8000  # the original; resampled when read
    x = AudioDataset(tmp_path / "data/train").load(utt)
    assert abs(len(x) / 16000 - sf.info(wav).duration) < 1e-3


def test_unknown_speaker_and_bad_names(small_fsdd, tmp_path):
    with pytest.raises(FSDDError, match=r"speakers \['lucas'\] are not in the recordings"):
        prepare(small_fsdd, tmp_path / "d", {"dev": ["lucas"]})
    (small_fsdd / "notes.wav").write_bytes(b"")
    with pytest.raises(FSDDError, match="notes.wav: file name is not <digit>_<speaker>_<take>.wav"):
        prepare(small_fsdd, tmp_path / "d", {"test": ["george"]})
    (small_fsdd / "notes.wav").unlink()
    (small_fsdd / "1_george_9.wav").write_bytes(b"RIFF0000WAVEjunk")
    with pytest.raises(FSDDError, match="1_george_9.wav: not readable audio"):
        prepare(small_fsdd, tmp_path / "d", {"test": ["george"]})
