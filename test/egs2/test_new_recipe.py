"""A new corpus recipe built exactly as the README's "Adding a corpus" says, with a local teacher
checkpoint and an unlabelled training set, run through stage 6 (FSDD digits from test/data)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest
import torch
import yaml
from helpers import FSDD_RECORDINGS, ROOT, need, recipe_env
from test_synth_en_stages import ASR, TEACHER, student

from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.teacher.checkpoints import save_hubert

pytestmark = pytest.mark.slow  # a recipe run

WORDS = "zero one two three four five six seven eight nine".split()

DATA_SH = """#!/usr/bin/env bash
# Stage 1 of a new corpus: FSDD digits; train without transcripts (distillation audio only),
# digits of two speakers as the labelled fine-tuning set, a third speaker for dev and test.
set -euo pipefail
. ./path.sh
. ./db.sh
make_dir() {  # make_dir NAME SPEAKER TAKES WITH_TEXT
    local d=data/$1 f utt
    mkdir -p "$d"
    : > "$d/wav.scp"; : > "$d/utt2spk"; : > "$d/text.tmp"
    for f in "${DIGITS}"/*_"$2"_[$3].wav; do
        utt=$2-$(basename "$f" .wav)
        echo "$utt $f" >> "$d/wav.scp"
        echo "$utt $2" >> "$d/utt2spk"
        echo "$utt $(basename "$f" | cut -c1)" >> "$d/text.tmp"
    done
    if $4; then
        sed -e 's/ 0$/ zero/;s/ 1$/ one/;s/ 2$/ two/;s/ 3$/ three/;s/ 4$/ four/' \\
            -e 's/ 5$/ five/;s/ 6$/ six/;s/ 7$/ seven/;s/ 8$/ eight/;s/ 9$/ nine/' "$d/text.tmp" > "$d/text"
    fi
    rm "$d/text.tmp"
    utils/fix_data_dir.sh "$d"
}
make_dir train jackson 0-4 false
make_dir labelled theo 0-2 true
make_dir dev lucas 0 true
make_dir test george 0 true
for x in train labelled dev test; do
    if [ "$x" = train ]; then utils/validate_data_dir.sh --no-text data/$x; else utils/validate_data_dir.sh data/$x; fi
done
"""


def test_new_recipe_as_the_readme_says(tmp_path):
    need("sox")
    need("sctk")
    # 1. the folder, run.sh and db.sh copied from egs2/fsdd/distill1, the shared pieces linked
    r = tmp_path / "egs2/digits/distill1"
    (r / "local").mkdir(parents=True)
    (r / "conf").mkdir()
    run_sh = (ROOT / "egs2/fsdd/distill1/run.sh").read_text()
    shutil.copy(ROOT / "egs2/fsdd/distill1/db.sh", r / "db.sh")
    (r / "db.sh").write_text(f"DIGITS={FSDD_RECORDINGS}\n")
    for f in ("distill.sh", "path.sh", "cmd.sh"):
        (r / f).symlink_to(ROOT / "egs2/TEMPLATE/distill1" / f)
    (r / "utils").symlink_to(ROOT / "utils")
    # 2. local/data.sh: set -euo pipefail, path.sh, Kaldi dirs, validate
    (r / "local/data.sh").write_text(DATA_SH)
    os.chmod(r / "local/data.sh", 0o755)
    # 3. the set names and configs in run.sh, the configs in conf/: a local teacher, one student,
    #    an ESPnet config, the from-scratch baseline's architecture
    sets = {"--train_set": "train", "--valid_set": "dev", "--test_sets": '"dev test"', "--finetune_sets": "labelled",
            "--teacher_config": "conf/teacher/local.yaml", "--distill_configs": "conf/distill/fbank_tiny.yaml",
            "--fbank_configs": '""', "--asr_config": "conf/asr/tiny.yaml", "--asr_scratch_config": '""',
            "--asr_teacher": "false", "--grammar": "conf/asr/digits.txt"}  # the baselines: test_synth_en_stages.py
    for opt, value in sets.items():
        run_sh, n = re.subn(rf"{opt} \S+( \S+)?\"? \\", f"{opt} {value} \\\\", run_sh)
        assert n == 1, opt
    (r / "run.sh").write_text(run_sh)
    os.chmod(r / "run.sh", 0o755)
    for sub in ("teacher", "distill", "asr"):
        (r / "conf" / sub).mkdir()
    torch.manual_seed(0)
    save_hubert(r / "teacher.pt", HubertModel(HubertConfig(**TEACHER["model"], num_classes=12)))
    (r / "conf/teacher/local.yaml").write_text(yaml.safe_dump({"backend": "local", "path": "teacher.pt"}))
    fbank = student("fbank")
    fbank["distill"]["cache_teacher"] = False
    (r / "conf/distill/fbank_tiny.yaml").write_text(yaml.safe_dump(fbank))
    (r / "conf/asr/tiny.yaml").write_text(yaml.safe_dump(ASR))
    (r / "conf/asr/digits.txt").write_text("\n".join(WORDS) + "\n")  # closed vocabulary: stage 6 also decodes with it
    p = subprocess.run(["./run.sh", "--stage", "1", "--stop_stage", "6", "--nj", "2"], cwd=r,
                       env=recipe_env(), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-4000:]
    assert not (r / "data/train/text").exists()
    assert (r / "data/train/utt2dur").is_file()
    scores = json.loads((r / "exp/asr/fbank_tiny_labelled/decode_ctc_greedy_test/scores.json").read_text())
    assert scores["wer"]["result"]["ref"] > 0
    assert "| fbank_tiny_labelled | ctc greedy |" in (r / "RESULTS.md").read_text()
    assert not (r / "exp/asr/teacher_labelled").exists()
    hyps = (r / "exp/asr/fbank_tiny_labelled/decode_ctc_grammar_test/text").read_text().split("\n")
    assert len([h for h in hyps if h]) == 10
    assert {h.split()[1] for h in hyps if h} <= set(WORDS)
    assert "| fbank_tiny_labelled | ctc grammar |" in (r / "RESULTS.md").read_text()
