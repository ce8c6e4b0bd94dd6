"""LibriSpeech / Libri-light preparation on a small fake tree with the real layout."""
from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import librispeech_chapter as chapter

from espnet_distill.corpora.librispeech import LibriSpeechError, librilight_sources, prepare_dirs
from espnet_distill.data.kaldi_dir import validate_data_dir
from espnet_distill.data.tables import read_table


@pytest.fixture
def tree(tmp_path):
    ls = tmp_path / "LibriSpeech"
    chapter(ls / "dev-clean", "84", "121123", 3)
    chapter(ls / "dev-clean", "1272", "128104", 2)
    chapter(ls / "train-clean-100", "19", "198", 2)
    ft = tmp_path / "librispeech_finetuning"
    for i in range(6):
        chapter(ft / "1h" / str(i) / "clean", f"10{i}", "500", 1)
    chapter(ft / "9h" / "other", "200", "600", 2)
    return tmp_path


def test_split_and_librilight_subsets(tree, tmp_path):
    n = prepare_dirs([tree / "LibriSpeech/dev-clean"], tmp_path / "data/dev_clean")
    assert n == 5
    validate_data_dir(tmp_path / "data/dev_clean")
    text = read_table(tmp_path / "data/dev_clean/text").as_dict()
    assert text["84-121123-0001"] == "HELLO WORLD 1"
    assert read_table(tmp_path / "data/dev_clean/utt2spk").as_dict()["1272-128104-0000"] == "1272"
    sizes = {}
    for subset in ("10min", "1h", "10h"):
        sizes[subset] = prepare_dirs(librilight_sources(tree / "librispeech_finetuning", subset), tmp_path / subset)
        validate_data_dir(tmp_path / subset, check_audio=False)
    assert sizes == {"10min": 1, "1h": 6, "10h": 8}
    # nested: every 10min utterance is in 1h, every 1h utterance in 10h
    u = {s: set(read_table(tmp_path / s / "text").keys()) for s in sizes}
    assert u["10min"] <= u["1h"] <= u["10h"]


def test_missing_transcript_and_chapter_without_audio(tree, tmp_path):
    (tree / "LibriSpeech/dev-clean/84/121123/84-121123.trans.txt").unlink()
    with pytest.raises(LibriSpeechError, match=r"84/121123: missing transcript file 84-121123.trans.txt"):
        prepare_dirs([tree / "LibriSpeech/dev-clean"], tmp_path / "x")
    for f in (tree / "LibriSpeech/train-clean-100/19/198").glob("*.flac"):
        f.unlink()
    with pytest.raises(LibriSpeechError, match=r"19/198: chapter has a transcript but no audio"):
        prepare_dirs([tree / "LibriSpeech/train-clean-100"], tmp_path / "y")


def test_cli_names_the_problem(tree, tmp_path):
    (tree / "LibriSpeech/dev-clean/1272/128104/1272-128104-0001.flac").unlink()
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.prepare_librispeech", "split", "--root",
                        str(tree / "LibriSpeech"), "--split", "dev-clean", "--out", str(tmp_path / "d")],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "1272-128104.trans.txt:2: no audio file 1272-128104-0001.flac for utterance '1272-128104-0001'" in r.stderr
    assert not (tmp_path / "d" / "wav.scp").exists()
