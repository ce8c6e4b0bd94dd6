"""Swapping the teacher in conf/ (the toolkit's main use): a released-fairseq-format local
checkpoint goes through every stage with a CNN student, the teacher-as-frontend ASR model of
stage 5 included; an s3prl HuBERT upstream and a Hugging Face folder each go through stage 2 as
exp/teacher/teacher.pt."""
from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from helpers import SYNTH_TINY_DATA, need, recipe_env, released_fairseq_file, tiny_hf
from test_synth_en_stages import ASR, TEACHER, student

from espnet_distill.data.text import normalize_text as normalized
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.teacher.checkpoints import load_hubert, save_s3prl_hubert_local

pytestmark = pytest.mark.slow  # a recipe run

ASR_ATT = dict(ASR, decoder="transformer", decoder_conf={"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
               model_conf={"ctc_weight": 0.5, "report_cer": False, "report_wer": False},
               best_model_criterion=[["valid", "acc", "max"]], num_att_plot=0)  # no attention plots (seconds each)
# SUPERB's protocol (conf/asr/superb.yaml) narrowed: the student frozen, its layers weighted, a BLSTM
SUPERB = {"frontend": "distilled", "frontend_conf": {"layer": "weighted", "frozen": True}, "specaug": "specaug",
          "specaug_conf": {"apply_time_warp": True, "time_warp_window": 5, "apply_freq_mask": True,
                           "freq_mask_width_range": [0, 4], "num_freq_mask": 2, "apply_time_mask": True,
                           "time_mask_width_range": [0, 5], "num_time_mask": 2},
          "normalize": None, "preencoder": "linear", "preencoder_conf": {"output_size": 16}, "encoder": "rnn",
          "encoder_conf": {"rnn_type": "lstm", "bidirectional": True, "use_projection": False, "num_layers": 2,
                           "hidden_size": 16, "output_size": 32, "dropout": 0.2, "subsample": None},
          "model_conf": {"ctc_weight": 1.0, "report_cer": True, "report_wer": False}, "optim": "adam",
          "optim_conf": {"lr": 0.001}, "batch_type": "sorted", "batch_size": 4, "max_epoch": 2, "num_workers": 0,
          "best_model_criterion": [["valid", "cer_ctc", "min"]], "keep_nbest_models": 1, "grad_clip": 1.0, "seed": 0}
# conf/lm/rnn.yaml narrowed: ESPnet's LSTM LM for shallow fusion
LM = {"lm": "seq_rnn", "lm_conf": {"unit": 16, "nlayers": 1}, "optim": "adam", "optim_conf": {"lr": 0.01},
      "batch_type": "folded", "batch_size": 8, "max_epoch": 2, "num_workers": 0,
      "best_model_criterion": [["valid", "loss", "min"]], "keep_nbest_models": 1, "seed": 0}


def tiny_model() -> HubertModel:
    torch.manual_seed(0)
    return HubertModel(HubertConfig(**TEACHER["model"], num_classes=12)).eval()


def test_local_teacher_and_cnn_student_through_stage_6(copy_stage1):
    need("sox")
    r = copy_stage1  # stage 1 done with SYNTH_TINY_DATA
    model = tiny_model()
    # the layout of the oldest released checkpoints: an argparse.Namespace args, no cfg, untied final_proj
    released_fairseq_file(r / "hubert_tiny.pt", model, [str(i) for i in range(8)], "args_namespace", True)
    (r / "conf/teacher/local.yaml").write_text(yaml.safe_dump({"backend": "local", "path": "hubert_tiny.pt"}))
    (r / "conf/distill/cnn_tiny.yaml").write_text(yaml.safe_dump(student("cnn")))
    (r / "conf/asr/tiny.yaml").write_text(yaml.safe_dump(ASR_ATT))  # CTC/attention: both decoders
    # LM decoding with an LM trained on a corpus text (gzip, upper case, punctuation, no ids)
    (r / "conf/lm").mkdir(exist_ok=True)  # the demo has conf/lm/rnn.yaml
    (r / "conf/lm/tiny.yaml").write_text(yaml.safe_dump(LM))
    train_text = [line.split(" ", 1)[1] for line in (r / "data/train/text").read_text().splitlines()]
    with gzip.open(r / "lm.txt.gz", "wt") as f:
        f.write("".join(f"{t.upper()}.\n" for t in train_text))
    args = ["./run.sh", "--stage", "1", "--stop_stage", "6", "--nj", "2",
            "--local_data_opts", SYNTH_TINY_DATA, "--finetune_sets", "train_1min", "--test_sets", "test",
            "--teacher_config", "conf/teacher/local.yaml",
            "--distill_configs", "conf/distill/cnn_tiny.yaml", "--fbank_configs", "", "--asr_scratch_config", "",
            "--asr_config", "conf/asr/tiny.yaml", "--inference_nj", "2", "--distill_args", "--set train.max_steps=6",
            "--use_lm", "true", "--lm_config", "conf/lm/tiny.yaml", "--lm_train_text", "lm.txt.gz", "--beam_size", "2"]
    p = subprocess.run(args, cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    loaded, meta = load_hubert(r / "exp/teacher/teacher.pt")
    assert meta["format"] == "espnet_distill"
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)
    assert yaml.safe_load((r / "exp/teacher/teacher.yaml").read_text())["path"].endswith("exp/teacher/teacher.pt")
    info = json.loads((r / "exp/teacher/info.json").read_text())
    assert info["layout"] == "fairseq args (argparse.Namespace)"
    assert info["has_codebook"]
    assert info["num_classes"] == 12
    n_test = len((r / "data/test/utt2spk").read_text().splitlines())
    for name in ("cnn_tiny", "teacher"):
        d = r / f"exp/asr/{name}_train_1min"
        assert (d / "valid.acc.ave.pth").exists(), name  # the averaged model is the one decoded
        for kind, logs in (("ctc_greedy", "decode_log/ctc_greedy.*.log"),
                           ("att_beam", "decode_att_beam_test/log/decode.*.log")):
            out = d / f"decode_{kind}_test"  # each decoded in 2 jobs, merged
            assert len(list(d.glob(logs))) == 2, (name, kind)
            assert len((out / "text").read_text().splitlines()) == n_test
            scores = json.loads((out / "scores.json").read_text())
            assert scores["wer"]["source"] == "sclite"
            assert scores["wer"]["result"]["ref"] > 0
        # int8 linear layers, as on a CPU deployment (--int8_inference, on by default): scored beside
        # the float decoding, its frontend benchmarked, a section of RESULTS.md
        int8, greedy = (json.loads((d / f"decode_{k}_test/scores.json").read_text())
                        for k in ("ctc_greedy_int8", "ctc_greedy"))
        assert int8["wer"]["sclite"]["ref"] == greedy["wer"]["sclite"]["ref"] > 0
    results = (r / "RESULTS.md").read_text()
    assert "| teacher_train_1min | ctc greedy |" in results
    for name in ("cnn_tiny", "teacher"):
        assert f"| {name}_train_1min | ctc greedy int8 |" in results
        assert f"| {name}_train_1min | 1 | " in results.split("## int8 inference")[1]
    bench = json.loads((r / "exp/asr/benchmark.json").read_text())
    assert sorted(b["name"].endswith(" int8") for b in bench) == [False] * 2 + [True] * 2
    assert "## Environments" in results
    assert "- pytorch version: `pytorch 2.11" in results
    s = json.loads((r / "exp/distill/cnn_tiny/summary.json").read_text())
    assert s["steps"] == 6  # --distill_args
    assert "l1_1" in s["valid_per_layer"]
    assert "cos_2" in s["valid_per_layer"]
    assert s["init_copied"] > 0  # init.frontend: the teacher's CNN
    assert s["distiller_local"].endswith("exp/distill/cnn_tiny/student.distiller_local.pt")
    assert (r / "exp/distill/cnn_tiny/student.distiller_local.pt").is_file()

    # layer similarity: the student against the teacher, and the fine-tuned model against the student
    import sys

    a = subprocess.run([sys.executable, "-m", "espnet_distill.bin.analyze", "--teacher", "exp/teacher/teacher.yaml",
                        "--checkpoint", "exp/distill/cnn_tiny/student.pt", "--asr-exp", "exp/asr/cnn_tiny_train_1min",
                        "--data-dir", "data/dev", "--outdir", "exp/analysis", "--max-frames", "200"],
                       cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert a.returncode == 0, a.stderr[-3000:]
    tuned = json.loads((r / "exp/analysis/cnn_tiny_train_1min.finetuned.cka.json").read_text())["cka"]
    assert len(tuned) == len(tuned[0]) == 3
    assert all(0 <= v <= 1 + 1e-9 for row in tuned for v in row)
    assert len(json.loads((r / "exp/analysis/cnn_tiny.cka.json").read_text())["cka"]) == 3  # teacher: 2 layers + input

    # the demo's --export_onnx true: each model exported for ONNX Runtime (waveform students and the
    # teacher as frontend) and decoded by the exported folder's transcribe.py, fp32 and int8
    exported = results.split("## Exported models (sherpa-onnx / ONNX Runtime)")[1]
    for name in ("cnn_tiny", "teacher"):
        assert json.loads((r / f"exp/asr/onnx/{name}_train_1min/export.json").read_text())["kind"] == "waveform"
        for graph in ("fp32", "int8"):
            out = r / f"exp/asr/{name}_train_1min/decode_onnx_{graph}_test"
            assert len((out / "text").read_text().splitlines()) == n_test
            assert json.loads((out / "stats.json").read_text())["utterances"] == n_test
            assert json.loads((out / "scores.json").read_text())["wer"]["source"] == "sclite"
            assert f"| {name}_train_1min | {graph} | onnxruntime | " in exported

    # the LM: the corpus text normalised as the transcripts are, ESPnet's LM on the ASR tokens, its
    # dev perplexity; attention + CTC + LM beside attention beam search, scored, in RESULTS.md
    assert (r / "exp/lm/data/train.text").read_text().splitlines()[0] == f"lm000000001 {normalized(train_text[0])}"
    assert yaml.safe_load((r / "exp/lm/config.yaml").read_text())["token_list"][-1] == "<sos/eos>"
    assert float((r / "exp/lm/ppl_dev/ppl").read_text()) > 1
    assert "LM perplexity on dev: " in p.stderr

    def lm_decoded(model: str, kind: str) -> None:
        out = r / f"exp/asr/{model}/decode_{kind}_test"
        assert len((out / "text").read_text().splitlines()) == n_test
        assert json.loads((out / "scores.json").read_text())["wer"]["source"] == "sclite"
        logs = list(out.glob("log/decode.*.log"))
        assert len(logs) == 2 and all(" for lm" in log.read_text() for log in logs)  # the LM's scores

    for name in ("cnn_tiny", "teacher"):
        lm_decoded(f"{name}_train_1min", "att_beam_lm")
        assert f"| {name}_train_1min | 1 | att beam | att beam + LM | " in results.split("## LM decoding")[1]

    # stages 5-6 rerun with other options (the student's models only): ESPnet's speed perturbation of
    # the fine-tuning set (factors 0.9 and 1.0: train_1min_sp, twice the utterances, read through sox
    # pipes), and SUPERB's protocol beside whole-model fine-tuning; stage 6's earlier summary is kept
    # beside its earlier results; the LM, whose inputs are the same, is kept
    (r / "conf/asr/superb_tiny.yaml").write_text(yaml.safe_dump(SUPERB))
    n_ft = len((r / "data/train_1min/utt2spk").read_text().splitlines())
    p = subprocess.run([*args[:2], "5", *args[5:], "--speed_perturb_factors", "0.9 1.0", "--asr_teacher", "false",
                        "--asr_protocols", "finetune superb", "--superb_config", "conf/asr/superb_tiny.yaml",
                        "--int8_inference", "false", "--export_onnx", "false"],
                       cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "Step lm of stage 6: already done" in p.stderr
    lm_decoded("cnn_tiny_train_1min_superb", "ctc_beam_lm")  # CTC-only: CTC prefix beam search + LM
    assert "| cnn_tiny_train_1min_superb | 1 | ctc greedy | ctc beam + LM | " in \
        (r / "RESULTS.md").read_text().split("## LM decoding")[1]
    kept = list(r.glob("exp/score.*/RESULTS.md"))
    assert len(kept) == 1
    assert kept[0].read_text() == results != (r / "RESULTS.md").read_text()  # the new one has its own date
    # the SUPERB model: the student's weights as distilled (frozen), decoded and scored, in RESULTS.md
    from espnet_distill.checkpoint_io import safe_load
    from espnet_distill.student.export import load_student

    probe = r / "exp/asr/cnn_tiny_train_1min_superb"
    distilled = load_student(r / "exp/distill/cnn_tiny/student.pt")[0].state_dict()
    trained = safe_load(probe / "valid.cer_ctc.best.pth")
    frozen = {k[len("frontend.upstream."):]: v for k, v in trained.items() if k.startswith("frontend.upstream.")}
    assert frozen and all(torch.equal(v, distilled[k]) for k, v in frozen.items())
    assert "encoder.enc.0.nbrnn.weight_hh_l1_reverse" in trained
    assert json.loads((probe / "decode_ctc_greedy_test/scores.json").read_text())["wer"]["source"] == "sclite"
    assert not list(probe.glob("decode_onnx_*"))  # a probe, not for deployment
    superb = (r / "RESULTS.md").read_text().split("## SUPERB ASR")[1].split("\n## ")[0]
    assert "| cnn_tiny_train_1min | 1 | " in superb
    trained_on = yaml.safe_load((r / "exp/asr/cnn_tiny_train_1min/config.yaml").read_text())
    assert {Path(path).parent.name for path, _, _ in trained_on["train_data_path_and_name_and_type"]} == \
        {"train_1min_sp"}
    sp = (r / "dump/raw/train_1min_sp/utt2spk").read_text().splitlines()
    assert len(sp) == 2 * n_ft
    assert sp[0].startswith("sp0.9-")
    assert sp[-1].startswith("sp1.0-")

    # --force true reruns a finished stage afresh and keeps its results aside (reproduce.sh does this)
    p = subprocess.run([*args[:2], "3", "--stop_stage", "3", *args[5:], "--force", "true"], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "Stage 3 (distill): --force true; moving its results to" in p.stderr
    kept = [d for d in r.glob("exp/distill.*") if (d / "cnn_tiny/student.pt").is_file()]
    assert kept
    assert json.loads((r / "exp/distill/cnn_tiny/train_log.jsonl").read_text().splitlines()[0])["step"] == 1

    # new data (stage 1 rerun with another seed): the stages that read it rerun instead of keeping
    # models of the old data
    args1 = [a.replace("--nj 2", "--nj 2 --seed 1") if a.startswith("--train_hours") else a for a in args]
    p = subprocess.run([*args1[:4], "3", *args1[5:]], cwd=r, env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    for n, name in ((1, "data"), (2, "teacher"), (3, "distill")):
        assert f"Stage {n} ({name}): options changed since the last run" in p.stderr, name
    assert (r / "exp/distill/cnn_tiny/train.log.1").is_file() or list(r.glob("exp/distill.*/cnn_tiny/train.log"))



def test_s3prl_and_hugging_face_teachers_through_stage_2(copy_stage1):
    """An s3prl HuBERT upstream: stage 2 checks it against s3prl's forward and writes it as ours;
    then a Hugging Face folder (transformers' HubertModel, no codebook) in its place."""
    r = copy_stage1  # stage 1 done with SYNTH_TINY_DATA
    model = tiny_model()
    args = ["./run.sh", "--stage", "2", "--stop_stage", "2", "--nj", "2", "--local_data_opts", SYNTH_TINY_DATA]
    save_s3prl_hubert_local(r / "s3prl_tiny.pt", model)
    (r / "conf/teacher/s3prl.yaml").write_text(yaml.safe_dump(
        {"backend": "s3prl", "name": "hubert_local", "path_or_url": "s3prl_tiny.pt"}))
    p = subprocess.run([*args, "--teacher_config", "conf/teacher/s3prl.yaml"], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    loaded, _ = load_hubert(r / "exp/teacher/teacher.pt")
    for a, b in zip(loaded.state_dict().values(), model.state_dict().values()):
        assert torch.equal(a, b)

    tiny_hf().save_pretrained(r / "hf_tiny")
    (r / "conf/teacher/hf.yaml").write_text(yaml.safe_dump({"backend": "local", "path": "hf_tiny"}))
    p = subprocess.run([*args, "--teacher_config", "conf/teacher/hf.yaml"], cwd=r, env=recipe_env(),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "Stage 2 (teacher): options changed since the last run" in p.stderr
    info = json.loads((r / "exp/teacher/info.json").read_text())
    assert info["layout"] == "Hugging Face hubert (model.safetensors + config.json)"
    assert not info["has_codebook"]
    assert load_hubert(r / "exp/teacher/teacher.pt")[0].cfg.num_layers == 3
