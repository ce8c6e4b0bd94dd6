"""Scoring: hand-made pairs with known counts; sclite's counts and ours agree."""
from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import need

from espnet_distill.asr.decode import ctc_collapse, tokens_to_text
from espnet_distill.asr.score import Counts, align_counts, score_dir
from espnet_distill.data.text import normalize_text

PAIRS = {  # utt: (ref, hyp, (corr, sub, del, ins))
    "s1-u1": ("a b c d", "a c d e", (3, 0, 1, 1)),
    "s1-u2": ("x y z", "", (0, 0, 3, 0)),
    "s2-u3": ("hello world", "hello there world", (2, 0, 0, 1)),
    "s2-u4": ("the cat sat", "the bat sat", (2, 1, 0, 0)),
    "s2-u5": ("one two", "one two", (2, 0, 0, 0)),
}


def test_align_counts_hand_made():
    for utt, (ref, hyp, (c, s, d, i)) in PAIRS.items():
        got = align_counts(ref.split(), hyp.split())
        assert (got.corr, got.sub, got.dele, got.ins) == (c, s, d, i), utt


def test_sclite_agrees_with_our_counts(tmp_path):
    need("sctk")
    ref = {u: r for u, (r, _, _) in PAIRS.items()}
    hyp = {u: h for u, (_, h, _) in PAIRS.items()}
    result, ours, sclite = score_dir(ref, hyp, {}, tmp_path / "wer", "word")
    assert sclite is not None
    assert result is sclite
    assert (sclite.corr, sclite.sub, sclite.dele, sclite.ins, sclite.ref, sclite.snt_err) == \
        (ours.corr, ours.sub, ours.dele, ours.ins, ours.ref, ours.snt_err) == (9, 1, 4, 2, 14, 4)
    assert ours.kaldi_line() == "%WER 50.00 [ 7 / 14, 2 ins, 4 del, 1 sub ]"
    report = (tmp_path / "wer/result.txt").read_text()
    assert "Sum/Avg" in report
    assert "| s1 " in report
    assert "| s2 " in report  # per-speaker table
    _, ours_c, sclite_c = score_dir(ref, hyp, {}, tmp_path / "cer", "char")
    assert (sclite_c.err, sclite_c.ref) == (ours_c.err, ours_c.ref)


def test_sclite_counts_are_the_result_and_ours_the_cross_check(tmp_path, monkeypatch):
    """Equal-cost alignments may split errors differently: the result is sclite's, the check is
    on the cost; a large set skips our slow alignment; a differing cost is an error."""
    import espnet_distill.asr.score as score

    need("sctk")
    ref = {f"u{i}": "a b c d e f" for i in range(3)}
    hyp = {"u0": "a x c d", "u1": "b c d e f g", "u2": ""}
    result, ours, sclite = score_dir(ref, hyp, {}, tmp_path / "a")
    assert result == sclite
    assert score.cost(ours) == score.cost(sclite)
    monkeypatch.setattr(score, "CROSS_CHECK_CELLS", 10)
    result, ours, sclite = score_dir(ref, hyp, {}, tmp_path / "b")
    assert ours is None
    assert result == sclite
    monkeypatch.setattr(score, "run_sclite", lambda *a: Counts(3, 18, 18, 0, 0, 0, 0))
    with pytest.raises(RuntimeError, match="have different costs"):
        score_dir(ref, hyp, {}, tmp_path / "c", cross_check="always")


@pytest.mark.slow
def test_score_cli_missing_text_and_empty_hyp(tmp_path):
    (tmp_path / "hyp").write_text("u1\nu2 Hello, World!\n")
    (tmp_path / "ref").write_text("u1 some words\nu2 hello world\n")
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.score", "--ref", str(tmp_path / "ref"), "--hyp",
                        str(tmp_path / "hyp"), "--outdir", str(tmp_path / "s")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "%WER 50.00 [ 2 / 4, 0 ins, 2 del, 0 sub ]" in r.stdout  # punctuation and case normalised
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.score", "--ref", str(tmp_path / "nope"), "--hyp",
                        str(tmp_path / "hyp"), "--outdir", str(tmp_path / "s2")], capture_output=True, text=True)
    assert r.returncode == 0
    assert "no transcripts" in r.stderr
    assert "scoring skipped" in r.stderr


def test_normalisation_and_ctc_helpers():
    assert normalize_text("Hello,  World! It's \"fine\".") == "hello world it's fine"
    # punctuation becomes a space, as the README says: abbreviations and hyphenated words split
    assert normalize_text("Hon. H. G. Wells's picture-books") == "hon h g wells's picture books"
    assert normalize_text("Keep Case", case="keep", punctuation="keep") == "Keep Case"
    assert ctc_collapse([0, 3, 3, 0, 3, 4, 4, 0]) == [3, 3, 4]
    assert tokens_to_text(["h", "i", "<space>", "y", "o"]) == "hi yo"


def test_unknown_unit_and_empty_reference():
    from espnet_distill.asr.score import units

    with pytest.raises(ValueError, match="unit must be word or char"):
        units("a b", "phone")
    assert Counts(1, 0).rate() == 0.0


def test_significance_by_sc_stats(tmp_path):
    """sclite's own sc_stats decides: a system with far fewer errors on the same sentences wins the
    MAPSSWE test; a system against itself shows no difference."""
    from espnet_distill.asr.significance import compare

    need("sctk")
    words = "the cat sat on the mat and then it ran away".split()
    ref = {f"s{i % 8}-u{i:02d}": " ".join(words[i % 3:]) for i in range(40)}  # 8 speakers for the sign test
    # a few errors for the good system, many for the bad one, in the middle of sentences, with
    # correct words around them (MAPSSWE compares segments bounded by words both got right)
    good = {u: " ".join("y" if (j == 5 and i % 5 == 0) else w for j, w in enumerate(r.split()))
            for i, (u, r) in enumerate(ref.items())}
    bad = {u: " ".join("x" if j in (3, 4) else w for j, w in enumerate(r.split())) for u, r in ref.items()}
    score_dir(ref, good, {u: u.split("-")[0] for u in ref}, tmp_path / "good")
    score_dir(ref, bad, {u: u.split("-")[0] for u in ref}, tmp_path / "bad")
    res = compare(tmp_path / "good/result.sgml", tmp_path / "bad/result.sgml", "good", "bad")
    assert res["mapsswe"].better == "good"
    assert res["mapsswe"].p == "<0.001"
    assert res["sign"].better == "good"
    same = compare(tmp_path / "good/result.sgml", tmp_path / "good/result.sgml", "a", "b")
    assert same["mapsswe"].better is None
    assert same["sign"].better is None
