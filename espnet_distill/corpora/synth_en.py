"""The embedded synthetic English read-speech corpus (espeak-ng + sox).

Three steps, each deterministic for a given seed:

1. :func:`plan_corpus` draws sentences from our grammar and assigns them to
   speakers (espeak-ng voice + variant + pitch + rate); train, dev and test
   speakers are disjoint, and dev/test sentences never occur in train.
2. :func:`synthesize_specs` renders a list of planned utterances to 16 kHz
   mono 16-bit wavs (run in parallel shards through the job launcher), with
   optional reverberation (sox) and additive noise at a drawn SNR.
3. :func:`corpus_stats` reports utterances, hours and speakers per set, the
   vocabulary size and the test OOV rate.
"""
from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from espnet_distill.checkpoint_io import atomic_path
from espnet_distill.corpora import lexicon as lx
from espnet_distill.data.audio import SAMPLE_RATE
from espnet_distill.data.kaldi_dir import utt2spk_to_spk2utt
from espnet_distill.data.tables import read_table, write_table

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- grammar


def plural(noun: str) -> str:
    if noun in lx.IRREGULAR_PLURALS:
        return lx.IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


def inflect(verb: str) -> dict[str, str]:
    """``{"base", "past", "s", "ing"}`` forms of a verb."""
    if verb in lx.IRREGULAR_VERBS:
        past, s, ing = lx.IRREGULAR_VERBS[verb]
        return {"base": verb, "past": past, "s": s, "ing": ing}
    if verb.endswith("e"):
        past, ing = verb + "d", verb[:-1] + "ing"
    elif verb.endswith("y") and verb[-2] not in "aeiou":
        past, ing = verb[:-1] + "ied", verb + "ing"
    else:
        past, ing = verb + "ed", verb + "ing"
    if verb.endswith(("s", "x", "ch", "sh", "o")):
        s = verb + "es"
    elif verb.endswith("y") and verb[-2] not in "aeiou":
        s = verb[:-1] + "ies"
    else:
        s = verb + "s"
    return {"base": verb, "past": past, "s": s, "ing": ing}


class Grammar:
    """A small random sentence grammar over the word lists of :mod:`lexicon`."""

    TEMPLATES = (
        "the {adj} {noun} {vpast} the {noun2} {prep} the {noun3}",
        "{name} {vpast} a {adj} {noun} in {place} on {day}",
        "{name} and {name2} {vpast} the {nouns} {adv}",
        "did the {noun} {vbase} the {adj} {noun2} {prep} the {noun3}",
        "{num} {adj} {nouns} were {ving} {prep} the {noun}",
        "the {noun} {vs} the {nouns} {adv} because the {noun2} was {adj}",
        "{name} will {vbase} the {adj} {noun} {prep} the {noun2} tomorrow",
        "after the {noun} {vpast} {name} {vpast2} the {adj} {noun2}",
        "why does the {adj} {noun} {vbase} {num} {nouns} every {day}",
        "a {adj} {noun} from {place} was {ving} the {adj2} {noun2}",
        "{name} could not {vbase} the {noun} {prep} the {adj} {noun2}",
        "the {nouns} of {place} {vpast} {num} {adj} {nouns2} {adv}",
    )

    def __init__(self) -> None:
        self.nouns = lx.words(lx.NOUNS)
        self.verbs = [inflect(v) for v in lx.words(lx.VERBS) + list(lx.IRREGULAR_VERBS)]
        self.adjs = lx.words(lx.ADJECTIVES)
        self.advs = lx.words(lx.ADVERBS)
        self.names = lx.words(lx.NAMES)
        self.places = lx.words(lx.PLACES)
        self.days = lx.words(lx.DAYS)
        self.preps = lx.words(lx.PREPOSITIONS)
        self.nums = lx.words(lx.NUMBERS)

    def vocabulary(self) -> set[str]:
        """Every word the grammar can produce."""
        v = set(self.nouns) | {plural(n) for n in self.nouns}
        for f in self.verbs:
            v |= set(f.values())
        v |= set(self.adjs) | set(self.advs) | set(self.names) | set(self.places)
        v |= set(self.days) | set(self.preps) | set(self.nums)
        for t in self.TEMPLATES:
            v |= {w for w in t.split() if not w.startswith("{")}
        return v

    def sentence(self, rng: random.Random) -> str:
        c = rng.choice
        fill = {
            "adj": c(self.adjs), "adj2": c(self.adjs), "adv": c(self.advs),
            "noun": c(self.nouns), "noun2": c(self.nouns), "noun3": c(self.nouns),
            "nouns": plural(c(self.nouns)), "nouns2": plural(c(self.nouns)),
            "name": c(self.names), "name2": c(self.names), "place": c(self.places),
            "day": c(self.days), "prep": c(self.preps), "num": c(self.nums),
            "vpast": c(self.verbs)["past"], "vpast2": c(self.verbs)["past"],
            "vbase": c(self.verbs)["base"], "vs": c(self.verbs)["s"], "ving": c(self.verbs)["ing"],
        }
        return c(self.TEMPLATES).format(**fill)


# ----------------------------------------------------------------------------- speakers


@dataclass(frozen=True)
class Speaker:
    """An espeak-ng voice treated as a speaker."""

    id: str
    voice: str  # espeak-ng voice + variant, e.g. "en-us+m3"
    pitch: int  # 0-99
    rate: int  # words per minute


_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """``n`` distinct speakers (voice, variant, pitch, rate), deterministic in ``seed``."""
    rng = random.Random(seed)
    combos = [(v, var) for v in _VOICES for var in _VARIANTS]
    rng.shuffle(combos)
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} synthetic speakers, asked for {n}")
    out = []
    for i, (voice, var) in enumerate(combos[:n]):
        out.append(Speaker(f"spk{i + 1:02d}", f"{voice}+{var}", rng.randrange(25, 75), rng.randrange(140, 185)))
    return out


# ----------------------------------------------------------------------------- planning


@dataclass
class UttSpec:
    utt: str
    spk: str
    voice: str
    pitch: int
    rate: int
    text: str
    reverb: int  # sox reverberance 0-100, 0 = none
    snr_db: float | None  # None = no added noise


SECONDS_PER_UTT_ESTIMATE = 3.15  # mean of this grammar over the default speakers (measured: 3.19 s)


def plan_corpus(
    out_dir: str | os.PathLike,
    seed: int = 0,
    train_hours: float = 1.0,
    dev_utts: int = 200,
    test_utts: int = 200,
    n_train_spk: int = 12,
    n_dev_spk: int = 2,
    n_test_spk: int = 2,
    reverb_prob: float = 0.0,
    noise_prob: float = 0.0,
    snr_range: tuple[float, float] = (10.0, 30.0),
) -> dict[str, list[UttSpec]]:
    """Draw the corpus plan and write ``<out_dir>/<set>/spec.scp`` (utt -> JSON spec)."""
    rng = random.Random(seed)
    grammar = Grammar()
    speakers = make_speakers(n_train_spk + n_dev_spk + n_test_spk, seed)
    split = {
        "train": speakers[:n_train_spk],
        "dev": speakers[n_train_spk:n_train_spk + n_dev_spk],
        "test": speakers[n_train_spk + n_dev_spk:],
    }
    sizes = {"train": max(1, round(train_hours * 3600 / SECONDS_PER_UTT_ESTIMATE)), "dev": dev_utts, "test": test_utts}
    seen: set[str] = set()
    plan: dict[str, list[UttSpec]] = {}
    for name in ("train", "dev", "test"):
        specs = []
        spks = split[name]
        for i in range(sizes[name]):
            text = grammar.sentence(rng)
            while text in seen:  # sentences are unique across the whole corpus
                text = grammar.sentence(rng)
            seen.add(text)
            spk = spks[i % len(spks)]
            reverb = rng.randrange(20, 80) if rng.random() < reverb_prob else 0
            snr = round(rng.uniform(*snr_range), 1) if rng.random() < noise_prob else None
            specs.append(UttSpec(f"{spk.id}-{name}{i:05d}", spk.id, spk.voice, spk.pitch, spk.rate, text, reverb, snr))
        plan[name] = specs
        d = Path(out_dir) / name
        write_table(d / "spec.scp", [(s.utt, json.dumps(asdict(s))) for s in specs])
    return plan


# ----------------------------------------------------------------------------- synthesis


def _utt_rng(seed: int, utt: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(utt.encode())])


def synthesize(spec: UttSpec, seed: int = 0) -> np.ndarray:
    """Render one utterance: (T,) int16 samples at 16 kHz."""
    tts = subprocess.run(
        ["espeak-ng", "-v", spec.voice, "-p", str(spec.pitch), "-s", str(spec.rate), "--stdout", spec.text],
        capture_output=True,
    )
    if tts.returncode != 0 or not tts.stdout:
        raise RuntimeError(f"utterance '{spec.utt}': espeak-ng failed ({tts.returncode}): {tts.stderr.decode()[-300:]}")
    effects = ["rate", str(SAMPLE_RATE)]
    if spec.reverb:
        effects += ["reverb", str(spec.reverb)]
    effects += ["gain", "-n", "-3"]
    sox = subprocess.run(
        ["sox", "-R", "-t", "wav", "-", "-t", "raw", "-e", "floating-point", "-b", "32", "-c", "1", "-"] + effects,
        input=tts.stdout,
        capture_output=True,
    )
    if sox.returncode != 0:
        raise RuntimeError(f"utterance '{spec.utt}': sox failed ({sox.returncode}): {sox.stderr.decode()[-300:]}")
    x = np.frombuffer(sox.stdout, dtype=np.float32).copy()
    if spec.snr_db is not None:
        rng = _utt_rng(seed, spec.utt)
        p_sig = float(np.mean(x**2)) + 1e-10
        noise = rng.standard_normal(len(x)).astype(np.float32)
        x = x + noise * np.sqrt(p_sig / 10 ** (spec.snr_db / 10))
        peak = float(np.abs(x).max())
        if peak > 0.99:
            x *= 0.99 / peak
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def wav_path(wav_dir: str | os.PathLike, spec: UttSpec, seed: int) -> Path:
    """``<wav_dir>/<spk>/<utt>.<hash>.wav``: the hash of the spec and seed names the file, so a
    changed plan (other sentence, voice or noise) never reuses a stale wav of the same id."""
    h = zlib.crc32(json.dumps([asdict(spec), seed], sort_keys=True).encode())
    return Path(wav_dir) / spec.spk / f"{spec.utt}.{h:08x}.wav"


def synthesize_specs(spec_scp: str | os.PathLike, wav_dir: str | os.PathLike, seed: int = 0,
                     progress: bool = True) -> int:
    """Render every utterance of a spec.scp shard to :func:`wav_path`.

    Existing wavs of the same spec are kept (a killed job resumes); each file is written
    to a temporary name and renamed, so a kill never leaves a partial wav.
    Returns the number of wavs written now.
    """
    from tqdm import tqdm

    table = read_table(spec_scp)
    written = 0
    for _utt, js in tqdm(table.items, desc=f"synth {Path(spec_scp).name}", disable=not progress, unit="utt"):
        spec = UttSpec(**json.loads(js))
        out = wav_path(wav_dir, spec, seed)
        if out.is_file():
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        samples = synthesize(spec, seed)
        with atomic_path(out) as tmp:
            sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
        written += 1
    return written


def write_data_dir(spec_scp: str | os.PathLike, wav_dir: str | os.PathLike, data_dir: str | os.PathLike,
                   seed: int = 0) -> None:
    """Kaldi dir (wav.scp, text, utt2spk, spk2utt, utt2dur) for the synthesized utterances."""
    specs = [UttSpec(**json.loads(js)) for _, js in read_table(spec_scp).items]
    wav_dir = Path(wav_dir).resolve()
    d = Path(data_dir)
    wav, text, u2s, dur = [], [], [], []
    for s in specs:
        path = wav_path(wav_dir, s, seed)
        if not path.is_file():
            raise FileNotFoundError(f"utterance '{s.utt}': wav {path} was not synthesized")
        wav.append((s.utt, str(path)))
        text.append((s.utt, s.text))
        u2s.append((s.utt, s.spk))
        dur.append((s.utt, f"{sf.info(str(path)).duration:.3f}"))
    write_table(d / "wav.scp", wav)
    write_table(d / "text", text)
    write_table(d / "utt2spk", u2s)
    write_table(d / "utt2dur", dur)
    write_table(d / "spk2utt", utt2spk_to_spk2utt(u2s))


def corpus_stats(data_root: str | os.PathLike, sets: list[str], train_set: str = "train") -> dict:
    """Utterances, hours and speakers per set; vocabulary size; OOV rate of test sets w.r.t. train."""
    root = Path(data_root)
    out: dict = {"sets": {}}
    vocab: dict[str, set[str]] = {}
    for name in sets:
        d = root / name
        text = read_table(d / "text").items
        durs = [float(v) for _, v in read_table(d / "utt2dur").items] if (d / "utt2dur").is_file() else []
        spks = {v for _, v in read_table(d / "utt2spk").items}
        vocab[name] = {w for _, t in text for w in t.split()}
        out["sets"][name] = {
            "utts": len(text),
            "hours": round(sum(durs) / 3600, 3),
            "speakers": len(spks),
            "words": sum(len(t.split()) for _, t in text),
        }
    train_vocab = vocab.get(train_set, set())
    out["vocab_train"] = len(train_vocab)
    out["vocab_all"] = len(set().union(*vocab.values())) if vocab else 0
    out["grammar_vocab"] = len(Grammar().vocabulary())
    for name in sets:
        if name.startswith("test") or name.startswith("dev"):
            toks = [w for _, t in read_table(root / name / "text").items for w in t.split()]
            oov = sum(w not in train_vocab for w in toks)
            out["sets"][name]["oov_rate"] = round(oov / max(1, len(toks)), 4)
    return out
