"""Kaldi's data-dir tools under Kaldi's names and signatures, as a pasted local/data.sh calls them."""
from __future__ import annotations

import subprocess

import pytest
from helpers import ROOT, make_data_dir, segmented_dir

U = ROOT / "utils"


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)


def lines(path):
    return path.read_text().splitlines()


@pytest.fixture
def corpus(tmp_path):
    return make_data_dir(tmp_path, {f"s{i % 3}-{i:02d}": (f"s{i % 3}", f"word{i}") for i in range(9)})


@pytest.mark.slow
def test_subset_kaldi_forms(corpus, tmp_path):
    assert sh(U / "subset_data_dir.sh", corpus, 3, tmp_path / "even").returncode == 0
    assert [x.split()[0] for x in lines(tmp_path / "even/utt2spk")] == ["s0-00", "s1-01", "s2-02"]
    assert sh(U / "subset_data_dir.sh", "--first", corpus, 2, tmp_path / "first").returncode == 0
    assert len(lines(tmp_path / "first/utt2spk")) == 2
    assert sh(U / "subset_data_dir.sh", "--last", corpus, 2, tmp_path / "last").returncode == 0
    assert [x.split()[0] for x in lines(tmp_path / "last/utt2spk")] == ["s2-05", "s2-08"]
    assert sh(U / "subset_data_dir.sh", "--shortest", corpus, 2, tmp_path / "short").returncode == 0
    assert {x.split()[0] for x in lines(tmp_path / "short/utt2spk")} == {"s0-00",
            "s0-03"}  # 0.3 s and 0.4 s (the first two in sorted order)
    assert sh(U / "subset_data_dir.sh", "--per-spk", corpus, 1, tmp_path / "perspk").returncode == 0
    assert len(lines(tmp_path / "perspk/utt2spk")) == 3
    assert sh(U / "subset_data_dir.sh", "--speakers", corpus, 4, tmp_path / "spk").returncode == 0
    spks = {x.split()[1] for x in lines(tmp_path / "spk/utt2spk")}
    assert len(spks) == 2
    assert len(lines(tmp_path / "spk/utt2spk")) == 6  # whole speakers
    (tmp_path / "ulist").write_text("s1-04\ns2-05 extra fields\n")
    assert sh(U / "subset_data_dir.sh", "--utt-list", tmp_path / "ulist", corpus, tmp_path / "ul").returncode == 0
    assert [x.split()[0] for x in lines(tmp_path / "ul/utt2spk")] == ["s1-04", "s2-05"]
    (tmp_path / "slist").write_text("s2\n")
    assert sh(U / "subset_data_dir.sh", "--spk-list", tmp_path / "slist", corpus, tmp_path / "sl").returncode == 0
    assert len(lines(tmp_path / "sl/utt2spk")) == 3
    assert sh(U / "subset_data_dir.sh", "--first", 2, corpus, tmp_path / "ours").returncode == 0  # our form still works
    r = sh(U / "subset_data_dir.sh", corpus, 50, tmp_path / "x")
    assert r.returncode != 0
    assert "asked for 50 utterances (evenly) but it has only 9" in r.stderr


@pytest.mark.slow
def test_copy_combine_split_validate(corpus, tmp_path):
    assert sh(U / "copy_data_dir.sh", "--utt-prefix", "a-", "--spk-prefix", "a-", corpus,
              tmp_path / "a").returncode == 0
    assert lines(tmp_path / "a/utt2spk")[0] == "a-s0-00 a-s0"
    assert lines(tmp_path / "a/text")[0] == "a-s0-00 word0"
    assert lines(tmp_path / "a/wav.scp")[0].startswith("a-s0-00 ")
    r = sh(U / "combine_data.sh", "--extra-files", "utt2lang", tmp_path / "both", corpus, tmp_path / "a")
    assert r.returncode == 0, r.stderr
    assert len(lines(tmp_path / "both/utt2spk")) == 18
    assert sh(U / "validate_data_dir.sh", "--no-feats", "--no-wav", tmp_path / "both").returncode == 0
    assert sh(U / "split_data.sh", tmp_path / "both", 3).returncode == 0
    parts = [tmp_path / f"both/split3/{j}" for j in (1, 2, 3)]
    utts = [u for p in parts for u in lines(p / "utt2spk")]
    assert sorted(utts) == sorted(lines(tmp_path / "both/utt2spk"))
    for p in parts:  # speakers whole
        spk = {x.split()[1] for x in lines(p / "utt2spk")}
        assert all(s not in {x.split()[1] for q in parts if q != p for x in lines(q / "utt2spk")} for s in spk)


@pytest.mark.slow
def test_perturb_speed(tmp_path):
    from helpers import need

    need("sox")
    d = segmented_dir(tmp_path, {"u1": (0.0, 1.0), "u2": (1.0, 2.0)}, rec_seconds=2.0, texts={"u1": "a", "u2": "b"})
    assert sh(U / "perturb_data_dir_speed.sh", "1.1", d, tmp_path / "sp").returncode == 0
    assert lines(tmp_path / "sp/segments") == ["sp1.1-u1 sp1.1-rec 0.000 0.909", "sp1.1-u2 sp1.1-rec 0.909 1.818"]
    assert lines(tmp_path / "sp/utt2spk") == ["sp1.1-u1 sp1.1-s", "sp1.1-u2 sp1.1-s"]
    r = sh(U / "validate_data_dir.sh", tmp_path / "sp")  # reads the audio through the sox pipe
    assert r.returncode == 0, r.stderr
    from espnet_distill.data.audio import load_utterance

    x = load_utterance("sp1.1-rec", lines(tmp_path / "sp/wav.scp")[0].split(maxsplit=1)[1])
    assert abs(len(x) / 16000 - 2.0 / 1.1) < 0.01


def test_run_pl_is_kaldis_launcher(tmp_path):
    r = sh(U / "run.pl", "JOB=1:2", tmp_path / "log.JOB", "echo", "job", "JOB")
    assert r.returncode == 0, r.stderr
    assert "job 2" in (tmp_path / "log.2").read_text()


def test_perturb_speed_of_a_piped_wav_scp(tmp_path):
    """A piped entry is chained into sox with a '|' (it was glued on, failing at stage 5)."""
    from helpers import need

    from espnet_distill.data.audio import read_entry

    need("sox")
    d = make_data_dir(tmp_path, {"s1-a": ("s1", "x")})
    wav = d / "wav.scp"
    utt, path = wav.read_text().split()
    wav.write_text(f"{utt} sox {path} -t wav - |\n")
    assert sh(U / "perturb_data_dir_speed.sh", "0.5", d, tmp_path / "sp").returncode == 0
    entry = (tmp_path / "sp/wav.scp").read_text().split(maxsplit=1)[1]
    x, rate = read_entry("sp0.5-s1-a", entry)
    assert abs(len(x) / rate - 0.6) < 0.01  # 0.3 s at half speed


def test_copy_with_kaldis_dash_suffix(corpus, tmp_path):
    r = sh(U / "copy_data_dir.sh", "--utt-suffix", "-reverb", "--spk-prefix", "rv-", corpus, tmp_path / "rev")
    assert r.returncode == 0, r.stderr
    assert lines(tmp_path / "rev/utt2spk")[0] == "s0-00-reverb rv-s0"


def test_subset_by_duration_leaves_the_source_as_it_was(corpus, tmp_path):
    before = sorted(p.name for p in corpus.iterdir())
    assert sh(U / "subset_data_dir.sh", "--seconds", "1", corpus, tmp_path / "sec").returncode == 0
    assert sh(U / "subset_data_dir.sh", "--shortest", corpus, 2, tmp_path / "short").returncode == 0
    assert sorted(p.name for p in corpus.iterdir()) == before  # no utt2dur written into it


def test_first_n_of_fewer_is_an_error_in_both_forms(corpus, tmp_path):
    for form in (["--first", "100", corpus], ["--first", corpus, "100"]):
        r = sh(U / "subset_data_dir.sh", *form, tmp_path / "all")
        assert r.returncode == 1
        assert "asked for 100 utterances (first) but it has only 9" in r.stderr
        assert not (tmp_path / "all").exists()


@pytest.mark.slow
def test_validate_checks_utt2dur_against_the_utterances_and_the_audio(corpus):
    utts = sorted(line.split()[0] for line in lines(corpus / "utt2spk"))  # make_data_dir: 0.3 s, 0.4 s, ...
    (corpus / "utt2dur").write_text("".join(f"{u} {0.3 + 0.1 * i:.2f}\n" for i, u in enumerate(utts)))
    assert sh(U / "validate_data_dir.sh", corpus).returncode == 0
    text = (corpus / "utt2dur").read_text()
    (corpus / "utt2dur").write_text(text.replace("s1-04 0.70", "s1-04 2.00"))
    r = sh(U / "validate_data_dir.sh", corpus)
    assert r.returncode == 1
    assert "utt2dur:5: utterance 's1-04' lasts 0.700 s, not the 2.0 s of utt2dur" in r.stderr
    (corpus / "utt2dur").write_text("".join(line + "\n" for line in text.splitlines() if not line.startswith("s1-04")))
    r = sh(U / "validate_data_dir.sh", "--no-audio", corpus)
    assert r.returncode == 1
    assert "utterance 's1-04' is not in" in r.stderr
    assert "utt2dur" in r.stderr


def test_a_byte_order_mark_is_named(corpus):
    (corpus / "text").write_bytes(b"\xef\xbb\xbf" + (corpus / "text").read_bytes())
    r = sh(U / "validate_data_dir.sh", "--no-audio", corpus)
    assert r.returncode == 1
    assert "text:1: starts with a UTF-8 byte-order mark (BOM)" in r.stderr
