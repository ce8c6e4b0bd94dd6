"""The recipe's stage bookkeeping: keys over options, files, data and earlier stages; skip, rerun
(the finished results kept aside) and resume; the marker and reproduce.sh."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import make_data_dir, write_wav

from espnet_distill.bin import stage as stage_bin
from espnet_distill.stages import STAGES, STEPS, asr_config_for, asr_configs, asr_runs, begin, end, stage_key

DISTILL_SH = Path(__file__).resolve().parents[2] / "egs2/TEMPLATE/distill1/distill.sh"


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("train", "dev"):
        make_data_dir(tmp_path / "data", {f"s1-{name}{i}": ("s1", "a b") for i in range(2)}, name)
    Path("conf").mkdir()
    Path("conf/s.yaml").write_text("student: {dim: 8}\n")
    return {"stage": "3", "stop_stage": "3", "force": "false", "expdir": "exp", "datadir": "data",
            "results_md": "RESULTS.md", "distill_configs": "conf/s.yaml", "train_set": "train", "valid_set": "dev",
            "distill_args": "", "train_threads": "2", "run_args": "./run.sh --x 1"}


def test_a_finished_stage_is_skipped_until_what_it_reads_changes(env, tmp_path):
    assert begin(3, env)
    reproduce = Path("exp/distill/reproduce.sh").read_text()
    assert "train_threads=2 ./run.sh --x 1 --stage 3 --stop_stage 3 --force true" in reproduce
    end(3, env)
    assert not begin(3, env)  # done with the same key
    Path("conf/s.yaml").write_text("student: {dim: 16}\n")  # the config's content
    assert begin(3, env)
    assert len(list(Path("exp").glob("distill.*"))) == 1  # the finished results moved aside, not overwritten
    end(3, env)
    wav = Path((tmp_path / "data/train/wav.scp").read_text().split()[1])
    write_wav(wav, 0.9)  # the audio only
    assert begin(3, env)


def test_the_key_follows_earlier_stages_and_the_teacher(env):
    key = stage_key(3, env)
    Path("exp/teacher").mkdir(parents=True)
    Path("exp/teacher/.done").write_text("k\n# finished now\n")
    assert stage_key(3, env) != key  # the teacher stage finished (again)
    key = stage_key(3, env)
    Path("exp/teacher/teacher.yaml").write_text("backend: local\npath: /x.pt\n")
    assert stage_key(3, env) != key
    assert stage_key(3, {**env, "distill_args": "--set train.max_steps=3"}) != stage_key(3, env)


def test_out_of_range_unfinished_forced_and_missing_options(env, caplog):
    assert not begin(3, {**env, "stage": "4", "stop_stage": "6"})
    assert begin(3, env)  # started, never finished: resumed, nothing moved
    with caplog.at_level("INFO"):
        assert begin(3, env)
    assert "unfinished earlier run found" in caplog.text
    assert not list(Path("exp").glob("distill.*"))
    end(3, env)
    assert begin(3, {**env, "force": "true"})
    with pytest.raises(KeyError, match=r"reads \['distill_args'\]"):
        stage_key(3, {k: v for k, v in env.items() if k != "distill_args"})


def scoring(env: dict, **options: str) -> dict:
    """The options of stage 6 (and of its LM step)."""
    return {**env, "stage": "6", "stop_stage": "6", "int8_inference": "true", "export_onnx": "false",
            "test_sets": "dev", "inference_asr_model": "auto", "inference_args": "", "inference_config": "conf/s.yaml",
            "grammar": "", "inference_batch_size": "8", "use_lm": "false", "lm_weight": "0.5", "beam_size": "",
            "ngram_file": "", "ngram_weight": "0.9", "lm_config": "conf/lm.yaml", "lm_train_text": "", "lm_args": "",
            "token_type": "char", "nbpe": "100", "text_norm_opts": "--case lower", "finetune_sets": "train",
            "dumpdir": "dump", **options}


def test_a_rerun_of_scoring_keeps_the_earlier_summary(env):
    env6 = scoring(env)
    assert begin(6, env6)
    end(6, env6)
    Path("RESULTS.md").write_text("earlier table\n")
    assert begin(6, {**env6, "force": "true"})
    assert [p.read_text() for p in Path("exp").glob("score.*/RESULTS.md")] == ["earlier table\n"]


def test_the_lm_step_keeps_its_lm_until_what_it_reads_changes(env):
    """Stage 6 trains the LM of --use_lm in exp/lm, with a marker of its own: a rerun of stage 6 for
    another reason keeps it; its config, text, token list or training data retrain it (the finished
    LM moved aside), and stage 6 reruns with it."""
    env6 = scoring(env, use_lm="true")
    Path("conf/lm.yaml").write_text("lm: seq_rnn\n")
    tokens = Path("dump/token_list/char/tokens.txt")
    tokens.parent.mkdir(parents=True)
    tokens.write_text("<blank>\n<unk>\na\n<sos/eos>\n")
    key6 = stage_key(6, env6)
    assert "step:lm=(" in key6
    assert "step:lm" not in stage_key(6, {**env6, "use_lm": "false"})  # no LM: its inputs do not count
    assert begin("lm", env6)
    assert not Path("exp/lm/reproduce.sh").exists()  # stage 6's reruns it
    end("lm", env6)
    assert not begin("lm", env6)
    assert not begin("lm", {**env6, "inference_args": "--nbest 2", "lm_weight": "0.3"})  # decoding only
    for change in (lambda: Path("conf/lm.yaml").write_text("lm: transformer\n"),
                   lambda: tokens.write_text("<blank>\n<unk>\nb\n<sos/eos>\n"),
                   lambda: Path("data/train/text").write_text("s1-train0 a\ns1-train1 b b\n")):
        change()
        assert stage_key(6, env6) != key6
        key6 = stage_key(6, env6)
        assert begin("lm", env6)
        end("lm", env6)
    assert len(list(Path("exp").glob("lm.*"))) == 3  # each finished LM kept aside
    Path("lm.txt").write_text("a a\n")  # --lm_train_text: a file, or a data dir's text
    keys = {stage_key("lm", {**env6, "lm_train_text": t}) for t in ("lm.txt", "data/dev", "data/train")}
    Path("lm.txt").write_text("a b\n")
    assert len(keys | {stage_key("lm", {**env6, "lm_train_text": "lm.txt"})}) == 4
    assert not begin("lm", {**env6, "stage": "5", "stop_stage": "5"})  # out of stage 6's range
    assert stage_bin.main(["begin", "lm"]) == 1  # bin/stage takes step names; the options are missing here


def test_distill_sh_exports_every_option_a_stage_reads():
    text = DISTILL_SH.read_text()
    exported = set(re.search(r"\nexport stage (.*?)\n(?!\s)", text, re.S).group(0).replace("\\",
                                                                                           " ").split()) - {"export"}
    stages = [*STAGES.values(), *(stage for _, stage, _ in STEPS.values())]
    declared = {n for s in stages for n in (*s.values, *s.data, *(f for f in s.files if isinstance(f, str)))}
    declared |= {"stage", "stop_stage", "force", "expdir", "datadir", "results_md", "asr_config", "asr_set_configs",
                 "finetune_sets", "use_lm", "dumpdir"}
    assert declared <= exported, declared - exported


def test_each_fine_tuning_set_has_one_config(capsys, caplog, monkeypatch):
    env = {"asr_config": "conf/asr/ctc.yaml", "asr_set_configs": "clean=conf/asr/a.yaml other=conf/asr/b.yaml",
           "finetune_sets": "clean noisy other noisy2", "asr_protocols": "finetune", "superb_sets": ""}
    assert [asr_config_for(env, s) for s in ("clean", "noisy", "other")] == \
        ["conf/asr/a.yaml", "conf/asr/ctc.yaml", "conf/asr/b.yaml"]
    assert asr_configs(env) == ["conf/asr/a.yaml", "conf/asr/ctc.yaml", "conf/asr/b.yaml"]  # the stage-5 key's
    for name, value in env.items():  # what distill.sh's asr_config_for prints
        monkeypatch.setenv(name, value)
    assert stage_bin.main(["asr-config", "other"]) == 0
    assert capsys.readouterr().out == "conf/asr/b.yaml\n"
    monkeypatch.delenv("asr_set_configs")
    assert stage_bin.main(["asr-config", "other"]) == 1
    assert "option asr_set_configs is not in the environment" in caplog.text


def test_each_protocol_trains_on_each_set_with_its_config(capsys, caplog, monkeypatch):
    env = {"asr_config": "conf/asr/ctc.yaml", "asr_set_configs": "other=conf/asr/b.yaml",
           "finetune_sets": "clean other", "asr_protocols": "finetune superb", "superb_config": "conf/asr/superb.yaml",
           "superb_sets": ""}
    assert asr_runs(env, "other") == [("finetune", "", "conf/asr/b.yaml"),
                                      ("superb", "_superb", "conf/asr/superb.yaml")]
    assert asr_configs(env) == ["conf/asr/ctc.yaml", "conf/asr/superb.yaml", "conf/asr/b.yaml"]
    assert asr_configs({**env, "asr_protocols": "superb"}) == ["conf/asr/superb.yaml"]
    assert asr_runs({**env, "superb_sets": "clean"}, "other") == [("finetune", "", "conf/asr/b.yaml")]
    for name, value in env.items():  # what distill.sh's asr_runs reads: an empty suffix as '-'
        monkeypatch.setenv(name, value)
    assert stage_bin.main(["asr-runs", "clean"]) == 0
    assert capsys.readouterr().out == "finetune - conf/asr/ctc.yaml\nsuperb _superb conf/asr/superb.yaml\n"
    for bad in ("superbb", ""):
        monkeypatch.setenv("asr_protocols", bad)
        assert stage_bin.main(["asr-configs"]) == 1
        assert f"asr_protocols '{bad}': each must be one of finetune, superb" in caplog.text
