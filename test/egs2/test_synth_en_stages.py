"""Stages 1-6 of the embedded recipe at tiny sizes: corpus, teacher, the Fbank student, ESPnet
fine-tuning of it and of the from-scratch baseline with two seeds, decoding, scoring (the CNN
student goes through every stage in test_swap_teacher.py)."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml
from helpers import SYNTH_TINY_DATA, need, recipe_env

pytestmark = pytest.mark.slow  # a recipe run

TEACHER = {
    "backend": "pretrain",
    "iterations": 2,  # the second iteration clusters layer 1 of the first
    "iter2_layer": 1,
    "kmeans": {"n_clusters": 12, "sample_frames": 20000, "seed": 0},
    "model": {"conv_layers": [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]],
              "embed_dim": 32, "ffn_dim": 64, "num_layers": 2, "num_heads": 2, "conv_pos": 8, "conv_pos_groups": 4,
              "final_dim": 16, "layer_norm_first": True},
    "mask": {"prob": 0.8, "length": 5, "nomask_weight": 1.0},
    "train": {"max_steps": 12, "lr": 0.002, "max_batch_seconds": 12, "valid_every": 6, "ckpt_every": 6},
}


def student(frontend: str) -> dict:
    s = {"student": {"frontend": frontend, "dim": 24, "ffn_dim": 24, "num_layers": 2, "num_heads": 2, "conv_pos": 8,
                     "conv_pos_groups": 4, "pred_head": "layer-wise", "disc_head": "type2"},
         "distill": {"alpha": 0.4, "cache_teacher": True, "fe_adapt_steps": 4 if frontend == "fbank" else 0},
         "train": {"max_steps": 10, "lr": 0.002, "max_batch_seconds": 12, "ckpt_every": 5}}
    if frontend == "cnn":
        s["student"]["frontend_conf"] = {"conv_layers": TEACHER["model"]["conv_layers"], "layer_norm": False}
        s["init"] = {"frontend": True}
    return s


ASR = {
    "frontend": "distilled", "frontend_conf": {"layer": "last"}, "encoder": "passthrough",
    "model_conf": {"ctc_weight": 1.0, "report_cer": False, "report_wer": False}, "optim": "adamw",
    "optim_conf": {"lr": 0.002},
    "batch_type": "numel", "batch_bins": 200000, "max_epoch": 2, "num_workers": 0,
    "best_model_criterion": [["valid", "loss", "min"]], "keep_nbest_models": 1, "seed": 0,
}


def make_messy_copy(src, dst) -> float:
    """A copy of a data dir as users bring them: recordings read through a sox pipe that makes
    them 8 kHz stereo, ``segments``, upper-case text with punctuation. Returns a duration limit
    that only the longest utterance exceeds."""
    dst.mkdir()
    durs = {u: float(v) for u, v in (line.split() for line in (src / "utt2dur").read_text().splitlines())}
    wav = dict(line.split(maxsplit=1) for line in (src / "wav.scp").read_text().splitlines())
    (dst / "wav.scp").write_text("".join(f"rec-{u} sox {p} -r 8000 -c 2 -t wav - |\n" for u, p in sorted(wav.items())))
    (dst / "segments").write_text("".join(f"{u} rec-{u} 0.00 {d:.2f}\n" for u, d in sorted(durs.items())))
    text = [line.split(maxsplit=1) for line in (src / "text").read_text().splitlines()]
    (dst / "text").write_text("".join(f"{u} \u201c{t.upper()}!\u201d, she said.\n" for u, t in text))
    shutil.copy(src / "utt2spk", dst / "utt2spk")
    shutil.copy(src / "spk2utt", dst / "spk2utt")
    longest, second = sorted(durs.values())[-2:][::-1]
    assert longest - second > 0.02
    return round((longest + second) / 2, 2)


def test_stages_1_to_6_tiny(copy_stage1):
    need("espeak-ng")
    need("sox")
    r = copy_stage1  # stage 1 done with SYNTH_TINY_DATA
    (r / "conf/teacher/tiny.yaml").write_text(yaml.safe_dump(TEACHER))
    (r / "conf/distill/fbank_tiny.yaml").write_text(yaml.safe_dump(student("fbank")))
    (r / "conf/asr/tiny.yaml").write_text(yaml.safe_dump(ASR))
    stage1 = ["--nj", "2", "--local_data_opts", SYNTH_TINY_DATA]
    # fine-tuning on a set in the form users bring (pipes, 8 kHz stereo, segments, punctuation)
    limit = make_messy_copy(r / "data/train_1min", r / "data/train_1min_messy")
    args = ["./run.sh", "--stage", "1", "--stop_stage", "6", *stage1, "--asr_config", "conf/asr/ctc.yaml",
            "--asr_set_configs", "train_1min_messy=conf/asr/tiny.yaml",
            "--asr_scratch_config", "conf/distill/fbank_tiny.yaml", "--max_wav_duration", str(limit),
            "--finetune_sets", "train_1min_messy", "--teacher_config", "conf/teacher/tiny.yaml",
            "--distill_configs", "", "--fbank_configs", "conf/distill/fbank_tiny.yaml",
            "--asr_seeds", "0 1", "--int8_inference", "false",  # int8, the exports, LM decoding and the
            "--export_onnx", "false", "--use_lm", "false",       # teacher's fine-tuning: test_swap_teacher.py,
            "--asr_teacher", "false"]                            # test_new_recipe.py
    p = subprocess.run(args, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    assert f"dropped 1 longer than {limit:g} s" in p.stderr
    tuned = yaml.safe_load((r / "exp/asr/fbank_tiny_train_1min_messy_seed1/config.yaml").read_text())
    assert (tuned["seed"], tuned["optim_conf"]["lr"]) == (1, ASR["optim_conf"]["lr"])  # --asr_set_configs' config
    dumped = r / "dump/raw/train_1min_messy"
    assert len((dumped / "dropped").read_text().splitlines()) == 1
    assert [line.split(maxsplit=1)[1] for line in (dumped / "text").read_text().splitlines()][0].endswith(" she said")
    assert "kept all 6 utterances (no filtering)" in p.stderr  # dev and test are scored whole
    assert (r / "exp/teacher/iter1/teacher.pt").is_file()
    assert (r / "exp/teacher/iter2/labels.train").is_file()
    summary = json.loads((r / "exp/teacher/summary.json").read_text())
    assert summary["kmeans_clusters"] == 12
    assert summary["dev_majority_rate"] > 0
    info = json.loads((r / "exp/teacher/info.json").read_text())
    assert info["has_codebook"]
    assert info["num_layers"] == 2
    s = json.loads((r / "exp/distill/fbank_tiny/summary.json").read_text())
    assert s["steps"] == 10
    assert "l1_1" in s["valid_per_layer"]
    assert "cos_2" in s["valid_per_layer"]
    assert (r / "exp/distill/fbank_tiny/student.pt").is_file()
    assert (r / "exp/distill/fbank_tiny/curves.png").is_file()
    log = (r / "exp/distill/fbank_tiny/train_log.jsonl").read_text().splitlines()
    assert "fe_l1" in json.loads(log[0])
    assert "reg" in json.loads(log[-2] if "valid" in log[-1] else log[-1])
    # stages 5-6: two ASR models, two fine-tuning seeds each, each decoded and scored on dev and test
    for name in [f"{m}_train_1min_messy_seed{seed}" for m in ("fbank_tiny", "scratch")
                 for seed in (0, 1)]:
        d = r / "exp/asr" / name
        assert (d / "valid.loss.best.pth").is_file(), name
        for x in ("dev", "test"):
            scores = json.loads((d / f"decode_ctc_greedy_{x}/scores.json").read_text())
            assert scores["wer"]["sclite"]["ref"] == scores["wer"]["ours"]["ref"] > 0
            assert (d / f"decode_ctc_greedy_{x}/score_wer/result.txt").is_file()
            assert (d / f"decode_ctc_greedy_{x}/score_cer/result.txt").is_file()
        assert "|decode_ctc_greedy_test|6|" in (d / "RESULTS.md").read_text()
    assert "%WER" in p.stdout
    summary = (r / "RESULTS.md").read_text()
    for name in ("fbank_tiny", "scratch"):
        assert f"| {name}_train_1min_messy_seed1 | ctc greedy |" in summary
    assert len(json.loads((r / "exp/asr/benchmark.json").read_text())) == 2
    # seeds and significance: mean and spread over the two seeds; sc_stats against the baseline
    seeds = summary.split("## Seeds and significance")[1]
    row = next(line for line in seeds.splitlines()
               if line.startswith("| fbank_tiny_train_1min_messy | ctc greedy | 2 |"))
    assert " ± " in row
    assert "/2, worse in " in row
    assert "| scratch_train_1min_messy | ctc greedy | 2 |" in seeds
    # a rerun skips all six stages
    p2 = subprocess.run(args, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p2.returncode == 0, p2.stderr[-2000:]
    assert p2.stderr.count("already done") == 6, p2.stderr[-2000:]


def test_stage2_gives_the_same_teacher_however_its_jobs_are_scheduled(copy_stage1):
    """Two runs of stage 2 with the same options give identical k-means labels and bit-identical
    teachers, whatever the number of feature-dump jobs and how many run at once."""
    import torch

    r = copy_stage1  # stage 1 done with SYNTH_TINY_DATA
    (r / "conf/teacher/tiny.yaml").write_text(yaml.safe_dump(TEACHER))
    args = ["./run.sh", "--stage", "1", "--stop_stage", "2", "--teacher_config", "conf/teacher/tiny.yaml",
            "--finetune_sets", "train_1min",
            "--local_data_opts", SYNTH_TINY_DATA]
    # the same thread count in both runs (the default, the free cores, may change between them)
    p = subprocess.run([*args, "--nj", "2"], cwd=r, env=recipe_env(train_threads="1"), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    first = {f: (r / "exp/teacher" / f).read_bytes() for f in ("iter1/labels.train", "iter2/labels.train")}
    teacher = torch.load(r / "exp/teacher/teacher.pt", weights_only=True)
    # again, forced: one dump job instead of two, one job at a time
    p = subprocess.run([*args, "--stage", "2", "--nj", "1", "--force", "true"], cwd=r,
                       env=recipe_env(max_jobs_run="1", train_threads="1"), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    for f, data in first.items():
        assert (r / "exp/teacher" / f).read_bytes() == data, f
    again = torch.load(r / "exp/teacher/teacher.pt", weights_only=True)
    assert again["state_dict"].keys() == teacher["state_dict"].keys()
    assert all(torch.equal(v, again["state_dict"][k]) for k, v in teacher["state_dict"].items())
