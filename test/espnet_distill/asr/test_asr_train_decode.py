"""ESPnet training and decoding through our entry points: hybrid CTC/attention with BPE tokens,
attention beam search via asr_inference, and CTC greedy decoding of a set without text."""
from __future__ import annotations

import shutil
import subprocess
import sys

import yaml
from conftest import need

from espnet_distill.bin.distill_train import build_student
from espnet_distill.data.kaldi_dir import read_table
from espnet_distill.data.synth_en import plan_corpus, synthesize_specs, write_data_dir
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.student.export import save_student
from espnet_distill.teacher.teacher import HubertTeacher

CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]

ASR = {
    "frontend": "distilled", "frontend_conf": {"layer": "weighted", "freeze_steps": 2},
    "specaug": "specaug", "specaug_conf": {"apply_time_warp": False, "apply_freq_mask": True,
                                            "freq_mask_width_range": [0, 4], "num_freq_mask": 1,
                                            "apply_time_mask": True, "time_mask_width_ratio_range": [0.0, 0.05],
                                            "num_time_mask": 1},
    "encoder": "passthrough", "decoder": "transformer",
    "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1}, "optim": "adamw", "optim_conf": {"lr": 0.002},
    "batch_type": "numel", "batch_bins": 200000, "max_epoch": 1, "num_workers": 0,
    "best_model_criterion": [["valid", "acc", "max"]], "keep_nbest_models": 1, "seed": 0,
}


def run(args, cwd):
    r = subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def test_ctc_attention_bpe_train_and_beam_search(tmp_path):
    need("espeak-ng")
    plan_corpus(tmp_path / "plan", seed=2, train_hours=0.01, dev_utts=3, test_utts=3)
    for s in ("train", "dev"):
        synthesize_specs(tmp_path / "plan" / s / "spec.scp", tmp_path / "wav", progress=False)
        write_data_dir(tmp_path / "plan" / s / "spec.scp", tmp_path / "wav", tmp_path / "data" / s)
    teacher = HubertModel(HubertConfig(conv_layers=CONV16, embed_dim=32, ffn_dim=64, num_layers=2, num_heads=2,
                                       conv_pos=8, conv_pos_groups=4, final_dim=8, num_classes=6))
    student, _ = build_student({"student": {"frontend": "cnn", "frontend_conf": {"conv_layers": CONV16},
                                            "dim": 24, "ffn_dim": 24, "num_layers": 2, "num_heads": 2, "conv_pos": 8,
                                            "conv_pos_groups": 4}}, HubertTeacher(teacher))
    save_student(tmp_path / "student.pt", student)
    (tmp_path / "asr.yaml").write_text(yaml.safe_dump(ASR))
    tok = tmp_path / "tok"
    run(["espnet_distill.asr.prep", "tokens", "--token-type", "bpe", "--bpe-size", "40", "--text",
         str(tmp_path / "data/train/text"), "--out", str(tok)], tmp_path)
    for s in ("train", "dev"):
        run(["espnet_distill.asr.prep", "shapes", "--data-dir", str(tmp_path / "data" / s), "--token-type", "bpe",
             "--bpe-model", str(tok / "bpe.model"), "--out", str(tmp_path / "shapes" / s)], tmp_path)
    exp = tmp_path / "exp"
    run(["espnet_distill.bin.asr_train", "--config", str(tmp_path / "asr.yaml"),
         "--frontend_conf", f"checkpoint={tmp_path / 'student.pt'}", "--output_dir", str(exp), "--ngpu", "0",
         "--token_type", "bpe", "--bpemodel", str(tok / "bpe.model"), "--token_list", str(tok / "tokens.txt"),
         "--use_preprocessor", "true",
         "--train_data_path_and_name_and_type", f"{tmp_path / 'data/train/wav.scp'},speech,sound",
         "--train_data_path_and_name_and_type", f"{tmp_path / 'data/train/text'},text,text",
         "--valid_data_path_and_name_and_type", f"{tmp_path / 'data/dev/wav.scp'},speech,sound",
         "--valid_data_path_and_name_and_type", f"{tmp_path / 'data/dev/text'},text,text",
         "--train_shape_file", str(tmp_path / "shapes/train/speech_shape"),
         "--train_shape_file", str(tmp_path / "shapes/train/text_shape.bpe"),
         "--valid_shape_file", str(tmp_path / "shapes/dev/speech_shape"),
         "--valid_shape_file", str(tmp_path / "shapes/dev/text_shape.bpe")], tmp_path)
    model = next(exp.glob("valid.acc.best.pth"))
    # attention beam search through espnet2's own inference
    run(["espnet_distill.bin.asr_inference", "--asr_train_config", str(exp / "config.yaml"), "--asr_model_file",
         str(model), "--data_path_and_name_and_type", f"{tmp_path / 'data/dev/wav.scp'},speech,sound",
         "--output_dir", str(tmp_path / "att"), "--beam_size", "2", "--ctc_weight", "0.3", "--ngpu", "0"], tmp_path)
    assert len(read_table(tmp_path / "att/1best_recog/text", allow_empty_value=True).items) == 3
    # CTC greedy on a set without transcripts: hypotheses are written; scoring says it skipped
    notext = tmp_path / "data/notext"
    shutil.copytree(tmp_path / "data/dev", notext)
    (notext / "text").unlink()
    run(["espnet_distill.asr.decode", "--asr-config", str(exp / "config.yaml"), "--asr-model", str(model),
         "--data-dir", str(notext), "--out", str(tmp_path / "greedy/text"), "--bpe-model", str(tok / "bpe.model")],
        tmp_path)
    assert len((tmp_path / "greedy/text").read_text().splitlines()) == 3
    r = run(["espnet_distill.bin.score", "--ref", str(notext / "text"), "--hyp", str(tmp_path / "greedy/text"),
             "--outdir", str(tmp_path / "greedy")], tmp_path)
    assert "scoring skipped" in r.stderr
