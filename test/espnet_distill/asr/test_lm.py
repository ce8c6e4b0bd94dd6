"""The LM's training text (corpus text, gzip or plain, or a data dir's transcripts, normalised as
the ASR transcripts are), its shape file, and the check that an n-gram file is over the ASR tokens."""
from __future__ import annotations

import gzip
import logging

import pytest

from espnet_distill.asr.lm import arpa_unigrams, check_ngram_tokens, write_lm_text
from espnet_distill.asr.prep import write_text_shape
from espnet_distill.bin import asr_prep
from espnet_distill.data.tables import DataDirError


def test_corpus_text_and_data_dirs_become_one_normalised_kaldi_text(tmp_path):
    with gzip.open(tmp_path / "lm.txt.gz", "wt") as f:  # as librispeech-lm-norm.txt.gz: upper case, no ids
        f.write("THE CAT, SAT.\n\n  \nIT'S \"DONE\"\n")
    (tmp_path / "plain.txt").write_text("one more line\n")
    (tmp_path / "train").mkdir()
    (tmp_path / "train/text").write_text("u1 A Bird!\nu2 ...\n")  # a data dir: ids dropped; u2 empty after it
    n = write_lm_text([tmp_path / "lm.txt.gz", tmp_path / "plain.txt", tmp_path / "train"], tmp_path / "out/text")
    assert n == 4
    assert (tmp_path / "out/text").read_text().splitlines() == [
        "lm000000001 the cat sat", "lm000000002 it's done", "lm000000003 one more line", "lm000000004 a bird"]
    write_lm_text([tmp_path / "plain.txt"], tmp_path / "upper", case="upper", punctuation="keep")
    assert (tmp_path / "upper").read_text() == "lm000000001 ONE MORE LINE\n"


def test_bad_text_names_the_line_and_writes_nothing(tmp_path, caplog):
    (tmp_path / "bad.txt").write_bytes(b"fine\nbad \xff byte\n")
    out = tmp_path / "out.text"
    out.write_text("earlier\n")
    with pytest.raises(DataDirError, match=r"bad.txt:2: not valid UTF-8 \(byte b'\\xff' at column 5\)"):
        write_lm_text([tmp_path / "bad.txt"], out)
    assert out.read_text() == "earlier\n"  # untouched
    (tmp_path / "empty.txt").write_text("...\n\n")
    with pytest.raises(DataDirError, match="no sentence left for the LM"):
        write_lm_text([tmp_path / "empty.txt"], out)
    assert out.read_text() == "earlier\n"
    assert asr_prep.main(["lm-text", "--text", str(tmp_path / "bad.txt"), "--out", str(out)]) == 1  # one line
    assert "asr_prep lm-text: " in caplog.text and "bad.txt:2" in caplog.text


def test_text_shape_counts_tokens_and_reports_unknown_ones(tmp_path, caplog):
    (tmp_path / "text").write_text("lm1 ab a\nlm2 b\n")
    (tmp_path / "tokens.txt").write_text("<blank>\n<unk>\na\nb\n<sos/eos>\n")
    with caplog.at_level(logging.WARNING):
        write_text_shape(tmp_path / "text", tmp_path / "shape", "char", token_list=tmp_path / "tokens.txt")
    assert (tmp_path / "shape").read_text() == "lm1 4\nlm2 1\n"  # a b <space> a
    assert "1 of its 5 tokens (20.00 %) are not in" in caplog.text  # <space>


ARPA = """\\data\\
ngram 1={n}

\\1-grams:
{unigrams}

\\2-grams:
-0.5\tx y

\\end\\
"""


def arpa(path, words):
    path.write_text(ARPA.format(n=len(words), unigrams="\n".join(f"-1.0\t{w}\t-0.3" for w in words)))
    return path


def test_an_ngram_must_be_over_the_asr_tokens(tmp_path):
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("<blank>\n<unk>\na\nb\nc\n<space>\n<sos/eos>\n")
    assert arpa_unigrams(arpa(tmp_path / "chars.arpa", ["<s>", "</s>", "a", "b", "<space>"])) == \
        {"<s>", "</s>", "a", "b", "<space>"}
    check_ngram_tokens(tmp_path / "chars.arpa", tokens)  # 3 of the 4 tokens: accepted
    words = arpa(tmp_path / "words.arpa", ["<s>", "</s>", "cab", "a"])  # a word n-gram beside a char model
    with pytest.raises(ValueError, match=r"words.arpa: only 1 of the 4 ASR tokens of .*tokens.txt are among its 4 "
                                         r"unigrams: ESPnet's n-gram scorer looks up each token by its string"):
        check_ngram_tokens(words, tokens)
    (tmp_path / "lm.bin").write_bytes(b"mmap lm http://kheafield.com/code format version 5\n\x00\x01")
    check_ngram_tokens(tmp_path / "lm.bin", tokens)  # KenLM binary: not read here, not refused
    assert asr_prep.main(["check-ngram", "--ngram-file", str(words), "--token-list", str(tokens)]) == 1
