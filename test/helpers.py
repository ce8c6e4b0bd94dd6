"""What the tests share: data dirs, audio, recipe copies, tiny models and checkpoints, built
offline from nothing but this repository (the embedded corpus, the FSDD recordings under
test/data). Fixtures are in conftest.py."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
FSDD_RECORDINGS = ROOT / "test" / "data" / "fsdd" / "recordings"  # CC BY-SA 4.0: see its README
# stage 1 of the embedded recipe at the size the recipe tests share (conftest.synth_stage1)
SYNTH_TINY_DATA = "--train_hours 0.02 --dev_utts 6 --test_utts 6 --lowres 1min:60 --nj 2"


def tone(seconds: float, rate: int = 16000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_wav(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate, freq, channels), rate, subtype="PCM_16")
    return path


def make_data_dir(root: Path, utts: dict[str, tuple[str, str]], name: str = "data") -> Path:
    """utts: utt -> (spk, text); writes a wav per utterance and a valid Kaldi dir."""
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    wav, text, u2s = [], [], []
    for i, (utt, (spk, txt)) in enumerate(sorted(utts.items())):
        p = write_wav(root / "wav" / f"{utt}.wav", 0.3 + 0.1 * i, freq=200 + 50 * i)
        wav.append(f"{utt} {p}\n")
        text.append(f"{utt} {txt}\n")
        u2s.append(f"{utt} {spk}\n")
    (d / "wav.scp").write_text("".join(wav))
    (d / "text").write_text("".join(text))
    (d / "utt2spk").write_text("".join(u2s))
    spk: dict[str, list[str]] = {}
    for utt, (s, _) in sorted(utts.items()):
        spk.setdefault(s, []).append(utt)
    (d / "spk2utt").write_text("".join(f"{s} {' '.join(u)}\n" for s, u in sorted(spk.items())))
    return d


def segmented_dir(root: Path, segments: dict[str, tuple[float, float]], rec_seconds: float = 3.0,
                  texts: dict[str, str] | None = None, name: str = "d") -> Path:
    """``root/name``: one recording ``rec`` of ``rec_seconds`` and ``segments`` {utt: (start, end)}
    over it, all of speaker ``s`` (wav.scp, segments, utt2spk, and text when ``texts`` is given)."""
    d = root / name
    d.mkdir(parents=True)
    rec = write_wav(root / f"{name}_rec.wav", rec_seconds)
    (d / "wav.scp").write_text(f"rec {rec}\n")
    (d / "segments").write_text("".join(f"{u} rec {a:.2f} {b:.2f}\n" for u, (a, b) in sorted(segments.items())))
    (d / "utt2spk").write_text("".join(f"{u} s\n" for u in sorted(segments)))
    if texts is not None:
        (d / "text").write_text("".join(f"{u} {texts[u]}\n" for u in sorted(segments)))
    return d


def librispeech_chapter(root: Path, spk: str, chap: str, n: int, words: str = "HELLO WORLD") -> Path:
    """``root/<spk>/<chap>/`` with ``n`` flac files and their ``.trans.txt``, as LibriSpeech lays them out."""
    d = root / spk / chap
    d.mkdir(parents=True)
    lines = []
    for i in range(n):
        utt = f"{spk}-{chap}-{i:04d}"
        sf.write(d / f"{utt}.flac", tone(0.3 + 0.1 * i), 16000, format="FLAC")
        lines.append(f"{utt} {words} {i}")
    (d / f"{spk}-{chap}.trans.txt").write_text("\n".join(lines) + "\n")
    return d


def recipe_env(**extra: str) -> dict:
    """The environment recipes run in: this checkout and this interpreter's venv."""
    return dict(os.environ, MAIN_ROOT=str(ROOT), ESPNET_DISTILL_VENV=str(Path(sys.executable).parents[1]), **extra)


def copy_recipe(corpus: str, dst: Path, copy: tuple[str, ...] = ("local", "db.sh")) -> Path:
    """A private copy of ``egs2/<corpus>/distill1`` at ``dst`` (its own data/, exp/, downloads/):
    the entries of ``copy`` copied; distill.sh, path.sh, cmd.sh and utils/ linked to this checkout."""
    src = ROOT / "egs2" / corpus / "distill1"
    dst.mkdir(parents=True)
    for name in copy:
        (shutil.copytree if (src / name).is_dir() else shutil.copy)(src / name, dst / name)
    for name in ("distill.sh", "path.sh", "cmd.sh"):
        (dst / name).symlink_to(ROOT / "egs2/TEMPLATE/distill1" / name)
    (dst / "utils").symlink_to(ROOT / "utils")
    return dst


FAIRSEQ_LAYOUTS = ("cfg_dict", "cfg_omegaconf", "args_namespace", "args_cfg_none")


def released_fairseq_file(path: Path, model, symbols: list[str], layout: str = "cfg_dict",
                          untie_final_proj: bool = False) -> None:
    """A file with the pickled structure of a released fairseq HuBERT checkpoint, as fairseq's
    ``Trainer.state_dict`` writes it (``fairseq/trainer.py``, read through the search tool): top-level
    ``args``, ``cfg``, ``model``, ``criterion``, ``optimizer_history``, ``task_state`` and
    ``extra_state``. ``layout`` (FAIRSEQ_LAYOUTS): ``cfg`` a plain dict (``OmegaConf.to_container``,
    newer fairseq) or the omegaconf ``DictConfig`` itself, pickled by omegaconf (older fairseq), with
    ``args`` None; or, as the oldest checkpoints (the archived HuBERT Base that
    ``examples/hubert/update_ckpt.py`` edits through ``state["args"]``), one flat
    ``argparse.Namespace`` ``args`` with no ``cfg`` (``args_namespace``) or ``cfg: None``.
    ``task_state`` holds the HuBERT task's ``fairseq.data.dictionary.Dictionary`` objects; numpy
    scalars are among the logged metrics. fairseq is not installed: a class of that module path is
    made for the save and removed again."""
    import argparse
    import types
    from collections import OrderedDict

    import torch

    from espnet_distill.teacher.checkpoints import fairseq_model_cfg

    class Dictionary:
        def __init__(self, symbols):
            self.bos_word, self.unk_word, self.pad_word, self.eos_word = "<s>", "<unk>", "<pad>", "</s>"
            self.symbols = ["<s>", "<pad>", "</s>", "<unk>", *symbols]
            self.count = [1] * len(self.symbols)
            self.indices = {s: i for i, s in enumerate(self.symbols)}
            self.bos_index, self.pad_index, self.eos_index, self.unk_index = 0, 1, 2, 3
            self.nspecial = 4

    Dictionary.__module__ = "fairseq.data.dictionary"
    Dictionary.__qualname__ = "Dictionary"
    names = ["fairseq", "fairseq.data", "fairseq.data.dictionary"]
    for name in names:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["fairseq.data.dictionary"].Dictionary = Dictionary
    model_cfg = dict(fairseq_model_cfg(model.cfg), untie_final_proj=untie_final_proj)
    task_cfg = {"normalize": model.cfg.normalize, "labels": ["km"], "label_rate": 50, "sample_rate": 16000}
    try:
        args, cfg = None, {"_name": None, "model": dict(model_cfg, _name="hubert"),
                           "task": dict(task_cfg, _name="hubert_pretraining")}
        if layout == "cfg_omegaconf":
            from omegaconf import OmegaConf

            cfg = OmegaConf.create(cfg)
        elif layout in ("args_namespace", "args_cfg_none"):
            args = argparse.Namespace(arch="hubert", task="hubert_pretraining", criterion="hubert",
                                      **{**model_cfg, **task_cfg, "labels": "['km']"}, max_update=400000, lr=[0.0005])
            cfg = None
        state = {"args": args, "cfg": cfg, "model": model.state_dict(), "criterion": None,
                 "optimizer_history": [{"criterion_name": "HubertCriterion", "optimizer_name": "FairseqAdam",
                                        "lr_scheduler_state": {"best": None}, "num_updates": 400000}],
                 "task_state": {"dictionaries": [Dictionary(symbols)]},
                 "extra_state": {"metrics": OrderedDict(train=OrderedDict(loss={"val": np.float64(3.2),
                                                                                "count": np.int64(7)})),
                                 "previous_training_time": 1234.5}}
        if layout == "args_namespace":
            del state["cfg"]
        torch.save(state, path)
    finally:
        for name in names:
            del sys.modules[name]


def need(cmd: str) -> None:
    if shutil.which(cmd) is None:
        pytest.fail(f"'{cmd}' is not installed: run tools/install.sh (make setup)")


# ----------------------------------------------------------------------------- tiny models and corpora
CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]


def tiny_teacher(num_classes=10):
    """A 4-layer HuBERT teacher of width 32 (random weights, seed 0) with a codebook of ``num_classes``."""
    from espnet_distill.nn.hubert import HubertConfig, HubertModel
    from espnet_distill.teacher.teacher import HubertTeacher

    torch.manual_seed(0)
    cfg = HubertConfig(conv_layers=CONV16, embed_dim=32, ffn_dim=64, num_layers=4, num_heads=2, conv_pos=8,
                       conv_pos_groups=4, final_dim=8, num_classes=num_classes)
    return HubertTeacher(HubertModel(cfg))


def tiny_student_conf(frontend="cnn", head="layer-wise", disc="type2"):
    """A distillation config mapping of a 2 x 24 student for :func:`tiny_teacher`."""
    student = {"frontend": frontend, "dim": 24, "ffn_dim": 24, "num_layers": 2, "num_heads": 2, "conv_pos": 8,
               "conv_pos_groups": 4, "pred_head": head, "disc_head": disc}
    if frontend == "cnn":
        student["frontend_conf"] = {"conv_layers": CONV16, "layer_norm": False}
    if head == "layer-wise":
        student["layer_map"] = {1: 2, 2: 4}
    else:
        student["pred_targets"] = [2, 4]
    return {"student": student, "init": {"frontend": frontend == "cnn"}}


def tiny_hf(kind: str = "hubert", stable: bool = False, cls_name: str | None = None):
    """A 3 x 32 transformers model with random, asymmetric weights: ``stable`` is the Large layout
    (layer norm first, LayerNorm after every conv, conv bias)."""
    import transformers

    torch.manual_seed(0)
    conf_cls = {"hubert": transformers.HubertConfig, "wavlm": transformers.WavLMConfig}[kind]
    extra = {"num_buckets": 16, "max_bucket_distance": 40} if kind == "wavlm" else {}
    conf = conf_cls(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64, conv_dim=[16] * 7,
                    num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4, do_stable_layer_norm=stable,
                    feat_extract_norm="layer" if stable else "group", conv_bias=stable, vocab_size=12, **extra)
    model = getattr(transformers, cls_name or {"hubert": "HubertModel", "wavlm": "WavLMModel"}[kind])(conf).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def toy_batch(n=2):
    """A batch of ``n`` (<= 2) noise utterances of 6000 and 4500 samples."""
    torch.manual_seed(5)
    return {"utt": [f"u{i}" for i in range(n)], "wav": torch.randn(n, 6000) * 0.1,
            "lengths": torch.tensor([6000, 4500][:n])}


TINY_PRETRAIN_CONF = {
    "backend": "pretrain",
    "model": {"conv_layers": [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]],
              "embed_dim": 32, "ffn_dim": 64, "num_layers": 2, "num_heads": 2, "conv_pos": 8, "conv_pos_groups": 4,
              "final_dim": 16, "dropout": 0.1},
    "mask": {"prob": 0.8, "length": 5},
    "train": {"max_steps": 8, "lr": 0.002, "warmup_ratio": 0.25, "max_batch_seconds": 12, "ckpt_every": 1,
              "log_every": 1, "seed": 3},
}


def pretrain_cmd(root: Path, outdir: Path, launcher=None):
    """The command line of a pretraining run on ``pretrain_corpus`` (``launcher``: e.g. torchrun)."""
    return (launcher or [sys.executable]) + [
        "-m", "espnet_distill.bin.teacher_pretrain", "train", "--config", str(root / "conf.yaml"),
        "--train-dir", str(root / "data/train"), "--valid-dir", str(root / "data/dev"),
        "--labels-dir", str(root / "km"), "--outdir", str(outdir)]
