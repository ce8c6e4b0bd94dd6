"""The embedded synthetic corpus: grammar, speakers, determinism, disjoint splits."""
from __future__ import annotations

import json
import random

import numpy as np
import soundfile as sf
from helpers import need

from espnet_distill.corpora.synth_en import (
    Grammar,
    UttSpec,
    inflect,
    make_speakers,
    plan_corpus,
    plural,
    synthesize_specs,
    wav_path,
    write_data_dir,
)
from espnet_distill.data.kaldi_dir import validate_data_dir
from espnet_distill.data.tables import read_table


def test_inflection_rules():
    assert [plural(w) for w in ("box", "city", "day", "knife", "child", "dog")] == [
        "boxes", "cities", "days", "knives", "children", "dogs"]
    assert inflect("carry") == {"base": "carry", "past": "carried", "s": "carries", "ing": "carrying"}
    assert inflect("dance")["ing"] == "dancing"
    assert inflect("watch")["s"] == "watches"
    assert inflect("stop")["past"] == "stopped"


def test_grammar_vocabulary_and_sentences():
    g = Grammar()
    vocab = g.vocabulary()
    assert len(vocab) >= 1000
    rng = random.Random(1)
    for _ in range(200):
        s = g.sentence(rng)
        assert set(s.split()) <= vocab
        assert "{" not in s


def test_speakers_distinct_and_deterministic():
    a, b = make_speakers(16, 5), make_speakers(16, 5)
    assert a == b
    assert len({(s.voice, s.pitch, s.rate) for s in a}) == 16


def test_plan_is_deterministic_and_disjoint(tmp_path):
    p1 = plan_corpus(tmp_path / "a", seed=3, train_hours=0.05, dev_utts=30, test_utts=30)
    p2 = plan_corpus(tmp_path / "b", seed=3, train_hours=0.05, dev_utts=30, test_utts=30)
    assert (tmp_path / "a/train/spec.scp").read_text() == (tmp_path / "b/train/spec.scp").read_text()
    assert {k: [s.text for s in v] for k, v in p1.items()} == {k: [s.text for s in v] for k, v in p2.items()}
    spk = {k: {s.spk for s in v} for k, v in p1.items()}
    txt = {k: {s.text for s in v} for k, v in p1.items()}
    assert not spk["train"] & spk["test"]
    assert not spk["train"] & spk["dev"]
    assert not spk["dev"] & spk["test"]
    assert not txt["train"] & txt["test"]
    assert not txt["train"] & txt["dev"]
    assert len(spk["train"]) == 12


def test_synthesis_resumes_and_makes_valid_dir(tmp_path):
    need("espeak-ng")
    need("sox")
    plan_corpus(tmp_path / "plan", seed=0, train_hours=0.003, dev_utts=2, test_utts=2, noise_prob=1.0, reverb_prob=1.0)
    spec = tmp_path / "plan/dev/spec.scp"
    assert synthesize_specs(spec, tmp_path / "wav", seed=0, progress=False) == 2
    utt, js = read_table(spec).items[0]
    wav = wav_path(tmp_path / "wav", UttSpec(**json.loads(js)), 0)
    first = wav.read_bytes()
    info = sf.info(str(wav))
    assert info.samplerate == 16000
    assert info.channels == 1
    assert info.subtype == "PCM_16"
    assert info.duration > 0.5
    assert synthesize_specs(spec, tmp_path / "wav", seed=0, progress=False) == 0  # resumed: nothing to do
    wav.unlink()
    assert synthesize_specs(spec, tmp_path / "wav", seed=0, progress=False) == 1
    assert wav.read_bytes() == first  # deterministic, noise included
    write_data_dir(spec, tmp_path / "wav", tmp_path / "data/dev")
    assert validate_data_dir(tmp_path / "data/dev")["utts"] == 2
    # a changed plan (another sentence for the same id) is synthesized anew, never reused
    other = tmp_path / "plan/dev/spec2.scp"
    other.write_text(spec.read_text().replace('"text": "', '"text": "hello '))
    assert synthesize_specs(other, tmp_path / "wav", seed=0, progress=False) == 2


def test_noise_lowers_snr(tmp_path):
    need("espeak-ng")
    from espnet_distill.corpora.synth_en import synthesize

    base = dict(utt="s-1", spk="s", voice="en-us+m3", pitch=50, rate=160, text="hello there", reverb=0)
    clean = synthesize(UttSpec(**base, snr_db=None)).astype(np.float64)
    noisy = synthesize(UttSpec(**base, snr_db=5.0)).astype(np.float64)
    # the clean rendering has silent edges; the noisy one does not
    assert np.abs(clean[:200]).max() < 50
    assert np.abs(noisy[:200]).std() > 100
