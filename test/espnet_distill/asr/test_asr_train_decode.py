"""ESPnet training and decoding through our entry points: hybrid CTC/attention with BPE tokens,
attention beam search via asr_inference, and CTC greedy, int8 and grammar decoding of a set without text."""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import need

from espnet_distill.corpora.synth_en import plan_corpus, synthesize_specs, write_data_dir
from espnet_distill.data.tables import read_table
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.student.export import save_student
from espnet_distill.teacher.teacher import HubertTeacher
from espnet_distill.train.distill import build_student

CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]

pytestmark = pytest.mark.slow  # ESPnet training and decoding, under torchrun too

ASR = {
    "frontend": "distilled", "frontend_conf": {"layer": "weighted", "freeze_steps": 2, "mask_time_prob": 0.1,
                                              "mask_time_length": 2, "mask_channel_prob": 0.1,
                                              "mask_channel_length": 4},
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


def prepare(tmp_path, token_type: str) -> list[str]:
    """A tiny synthetic train/dev pair, a tiny CNN student, tokens and shapes; returns the
    asr_train options that name them."""
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
    tok = tmp_path / "tok"
    run(["espnet_distill.bin.asr_prep", "tokens", "--token-type", token_type, "--bpe-size", "40", "--text",
         str(tmp_path / "data/train/text"), "--out", str(tok)], tmp_path)
    bpe = ["--bpe-model", str(tok / "bpe.model")] if token_type == "bpe" else []
    for s in ("train", "dev"):
        run(["espnet_distill.bin.asr_prep", "shapes", "--data-dir", str(tmp_path / "data" / s), "--token-type",
             token_type,
             *bpe, "--out", str(tmp_path / "shapes" / s)], tmp_path)
    return ["--frontend_conf", f"checkpoint={tmp_path / 'student.pt'}", "--token_type", token_type,
            *(["--bpemodel", str(tok / "bpe.model")] if token_type == "bpe" else []),
            "--token_list", str(tok / "tokens.txt"), "--use_preprocessor", "true",
            "--train_data_path_and_name_and_type", f"{tmp_path / 'data/train/wav.scp'},speech,sound",
            "--train_data_path_and_name_and_type", f"{tmp_path / 'data/train/text'},text,text",
            "--valid_data_path_and_name_and_type", f"{tmp_path / 'data/dev/wav.scp'},speech,sound",
            "--valid_data_path_and_name_and_type", f"{tmp_path / 'data/dev/text'},text,text",
            "--train_shape_file", str(tmp_path / "shapes/train/speech_shape"),
            "--train_shape_file", str(tmp_path / f"shapes/train/text_shape.{token_type}"),
            "--valid_shape_file", str(tmp_path / "shapes/dev/speech_shape"),
            "--valid_shape_file", str(tmp_path / f"shapes/dev/text_shape.{token_type}")]


def test_ctc_attention_bpe_train_and_beam_search(tmp_path, caplog, capsys):
    data_opts = prepare(tmp_path, "bpe")
    tok = tmp_path / "tok"
    (tmp_path / "asr.yaml").write_text(yaml.safe_dump(ASR))
    exp = tmp_path / "exp"
    run(["espnet_distill.bin.asr_train", "--config", str(tmp_path / "asr.yaml"), "--output_dir", str(exp),
         "--ngpu", "0", *data_opts], tmp_path)
    model = next(exp.glob("valid.acc.best.pth"))
    # attention beam search through espnet2's own inference
    run(["espnet_distill.bin.asr_inference", "--asr_train_config", str(exp / "config.yaml"), "--asr_model_file",
         str(model), "--data_path_and_name_and_type", f"{tmp_path / 'data/dev/wav.scp'},speech,sound",
         "--output_dir", str(tmp_path / "att"), "--beam_size", "2", "--ctc_weight", "0.3", "--ngpu", "0"], tmp_path)
    assert len(read_table(tmp_path / "att/1best_recog/text", allow_empty_value=True).items) == 3
    # asr_decode runs in this process from here on: ESPnet's start-up once, not per call (the
    # recipe tests run it as stage 6 does, through the launcher)
    from espnet_distill.bin import asr_decode

    notext = tmp_path / "data/notext"
    shutil.copytree(tmp_path / "data/dev", notext)
    (notext / "text").unlink()
    common = ["--asr-config", str(exp / "config.yaml"), "--asr-model", str(model),
              "--bpe-model", str(tok / "bpe.model")]
    # CTC greedy on a set without transcripts: hypotheses are written; scoring says it skipped.
    # Two sets in one process (one model load), each in two shards: the same audio, the same hypotheses
    for shard in ("1", "2"):
        assert asr_decode.main([*common, "--data-dir", str(notext), str(tmp_path / "data/dev"), "--out",
                                str(tmp_path / f"greedy/text.{shard}"), str(tmp_path / f"greedy_dev/text.{shard}"),
                                "--shard", shard, "--num-shards", "2"]) == 0
    for d in ("greedy", "greedy_dev"):
        parts = [(tmp_path / d / f"text.{shard}").read_text() for shard in (1, 2)]
        assert [len(part.splitlines()) for part in parts] == [1, 2], d  # 3 utterances in 2 contiguous shards
        (tmp_path / d / "text").write_text("".join(parts))
    assert (tmp_path / "greedy/text").read_text() == (tmp_path / "greedy_dev/text").read_text()
    # model files are read weights-only by us, whatever ESPnet's environment switch says; a file that is
    # not this model's weights is one clear line
    marker = tmp_path / "payload_ran"

    class RunsCode:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    torch.save({"x": RunsCode()}, tmp_path / "evil.pth")
    (tmp_path / "cut.pth").write_bytes(model.read_bytes()[:1000])
    torch.save({"w": torch.zeros(2)}, tmp_path / "other.pth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESPNET_ALLOW_UNSAFE_TORCH_LOAD", "1")
        for name, why in (("evil.pth", "holds a pickled Python object"), ("cut.pth", "truncated or corrupted"),
                          ("other.pth", "not a model of")):
            caplog.clear()
            with caplog.at_level(logging.ERROR):
                args = [*common[:2], "--asr-model", str(tmp_path / name), *common[4:]]
                assert asr_decode.main([*args, "--data-dir", str(notext), "--out", str(tmp_path / "z/text")]) == 1
            assert f"{name}: " in caplog.text, caplog.text
            assert why in caplog.text, caplog.text
    assert not marker.exists()
    assert not (tmp_path / "z").exists()
    # the audio read by two loader workers (as on a GPU): the same hypotheses
    assert asr_decode.main([*common, "--data-dir", str(notext), "--out", str(tmp_path / "workers/text"),
                            "--num-workers", "2"]) == 0
    assert (tmp_path / "workers/text").read_text() == (tmp_path / "greedy/text").read_text()
    # int8 linear layers (the CPU deployment stage 6 also scores): every utterance gets a hypothesis
    assert asr_decode.main([*common, "--data-dir", str(notext), "--out", str(tmp_path / "int8/text"),
                            "--quantize", "int8"]) == 0
    assert len((tmp_path / "int8/text").read_text().splitlines()) == 3
    # a grammar (closed vocabulary): every hypothesis is one of its transcripts
    allowed = [v for _, v in read_table(tmp_path / "data/dev/text").items] + ["hello there"]
    (tmp_path / "grammar.txt").write_text("\n".join(allowed) + "\n\n")
    assert asr_decode.main([*common, "--data-dir", str(notext), "--out", str(tmp_path / "grammar/text"),
                            "--grammar", str(tmp_path / "grammar.txt")]) == 0
    hyps = read_table(tmp_path / "grammar/text").as_dict()
    assert len(hyps) == 3
    assert set(hyps.values()) <= set(allowed)
    # bad input, refused before anything is decoded
    (tmp_path / "bad_grammar.txt").write_text("hello\nna\u00efve \u00fcber\n")
    with caplog.at_level(logging.ERROR):
        assert asr_decode.main([*common, "--data-dir", str(notext), "--out", str(tmp_path / "y"),
                                "--grammar", str(tmp_path / "bad_grammar.txt")]) == 1
    assert "bad_grammar.txt: grammar transcript 'na\u00efve \u00fcber'" in caplog.text
    for args, why in ((["--out", "x", "--quantize", "int8", "--device", "cuda"],
                       "--quantize int8 runs on the CPU only"),
                      (["--out", "x", "y"], "1 --data-dir but 2 --out: give one output file per data dir")):
        with pytest.raises(SystemExit) as e:
            asr_decode.main([*common, "--data-dir", str(notext), *args])
        assert e.value.code == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "y").exists()
    with pytest.raises(SystemExit) as e:
        asr_decode.main([*common, "--data-dir", str(notext), "--out", "x", "--shard", "3", "--num-shards", "2"])
    assert e.value.code == 2
    assert "--shard 3 is not in 1..2" in capsys.readouterr().err
    # a BPE model that is missing, left out or of another token list; a data dir that is not one
    other = tmp_path / "other_text"
    other.write_text("".join(f"o{i} zebra quartz jukebox vexing {i}\n" for i in range(20)))
    run(["espnet_distill.bin.asr_prep", "tokens", "--token-type", "bpe", "--bpe-size", "30", "--text", str(other),
         "--out", str(tmp_path / "tok_other")], tmp_path)
    for bpe, why in ((["--bpe-model", str(tmp_path / "none.model")], "none.model: file not found"),
                     ([], "its tokens are BPE pieces"),
                     (["--bpe-model", str(tmp_path / "tok_other/bpe.model")], "its token list does not match")):
        caplog.clear()
        with caplog.at_level(logging.ERROR):
            assert asr_decode.main([*common[:4], *bpe, "--data-dir", str(notext), "--out", str(tmp_path / "x")]) == 1
        assert why in caplog.text, caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        assert asr_decode.main([*common, "--data-dir", str(tmp_path / "nodir"), "--out", str(tmp_path / "x")]) == 1
    assert "nodir" in caplog.text
    assert not (tmp_path / "x").exists()
    r = run(["espnet_distill.bin.score", "--ref", str(notext / "text"), "--hyp", str(tmp_path / "greedy/text"),
             "--outdir", str(tmp_path / "greedy")], tmp_path)
    assert "scoring skipped" in r.stderr

    # the experiment moved elsewhere, the student checkpoint gone: the model still loads (its
    # config.yaml holds the frontend's architecture, its model file every weight) and transcribes
    # audio files directly, with the same CTC hypotheses as the Kaldi-dir decoder
    import json

    import numpy as np
    import soundfile as sf

    moved = tmp_path / "elsewhere/model"
    shutil.copytree(exp, moved)
    (tmp_path / "student.pt").rename(tmp_path / "student.pt.gone")
    wavs = [v for _, v in read_table(tmp_path / "data/dev/wav.scp").items]
    greedy = [v for _, v in read_table(tmp_path / "greedy/text", allow_empty_value=True).items]
    x, rate = sf.read(wavs[0])
    sf.write(tmp_path / "stereo_8k.wav", np.stack([x[::2], x[::2]], 1), rate // 2)  # another rate, two channels
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(tmp_path / "short.wav", np.zeros(200, dtype=np.float32), 16000)
    (tmp_path / "notes.wav").write_text("not audio")
    files = [*wavs, str(tmp_path / "stereo_8k.wav"), str(tmp_path / "missing.wav"), str(tmp_path / "empty.wav"),
             str(tmp_path / "short.wav"), str(tmp_path / "notes.wav")]
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.transcribe", "--model", str(moved),
                        "--model-file", str(moved / model.name), "--decoding", "ctc", *files],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 1, r.stderr[-3000:]  # some files failed, the others were transcribed
    out = dict(line.split("\t", 1) if "\t" in line else (line, "") for line in r.stdout.splitlines())
    assert [out[w].replace("\u2581", " ").strip() for w in wavs] == [g.strip() for g in greedy]
    assert str(tmp_path / "stereo_8k.wav") in out
    for bad, why in (("missing.wav", "file not found"), ("empty.wav", "empty"), ("short.wav", "too short"),
                     ("notes.wav", "not readable as audio")):
        assert f"transcribe: {tmp_path / bad}: {why}" in r.stderr, bad
    # what --model and --model-file may be, each mistake one line naming it (in this process: quicker)
    from espnet_distill.bin import transcribe

    (tmp_path / "cut.zip").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "audio_dir").mkdir()
    for args, why in (([str(tmp_path / "nomodel")], "no such experiment folder or packed model"),
                      ([str(tmp_path / "student.pt.gone")], "a torch checkpoint, not an experiment folder"),
                      ([str(tmp_path / "cut.zip")], "not a packed model"),
                      ([str(moved), "--model-file", "nofile.pth"], "--model-file nofile.pth: not a file, nor one in"),
                      ([str(moved), "--model-file", str(tmp_path / "evil.pth")], "holds a pickled Python object")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ESPNET_ALLOW_UNSAFE_TORCH_LOAD", "1")
            assert transcribe.main(["--model", *args, "--decoding", "ctc", wavs[0]]) == 2
        assert why in capsys.readouterr().err, args
    assert not marker.exists()
    # a --model-file named as in the folder; an audio "file" that is a directory
    assert transcribe.main(["--model", str(moved), "--model-file", model.name, "--decoding", "ctc", wavs[0],
                            str(tmp_path / "audio_dir")]) == 1
    captured = capsys.readouterr()
    assert captured.out.split("\t", 1)[1].strip() == out[wavs[0]].strip()
    assert f"{tmp_path / 'audio_dir'}: a directory, not an audio file" in captured.err
    # the grammar, as stage 6 decodes closed vocabularies: the same choice as the Kaldi-dir decoder's
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.transcribe", "--model", str(moved),
                        "--model-file", str(moved / model.name), "--grammar", str(tmp_path / "grammar.txt"), *wavs],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    dev_utts = [u for u, _ in read_table(tmp_path / "data/dev/wav.scp").items]
    assert [line.split("\t", 1)[1] for line in r.stdout.splitlines()] == [hyps[u] for u in dev_utts]
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.transcribe", "--model", str(moved), "--json",
                        "--model-file", str(moved / model.name), "--decoding", "attention", "--beam-size", "2",
                        wavs[0]], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(r.stdout.splitlines()[0])
    assert rec["file"] == wavs[0]
    assert rec["decoding"] == "attention"
    assert rec["audio_seconds"] > 0
    # packed with ESPnet's packer and a model card, unpacked by transcribe elsewhere: the same text
    (moved / "RESULTS.md").write_text("# results\n|dev|3|\n")
    run(["espnet_distill.bin.pack_model", "--exp", str(moved), "--model-file", str(moved / model.name), "--out",
         str(tmp_path / "model.zip")], tmp_path)
    card = (moved / "README.md").read_text()
    assert "| frontend | student" in card
    assert "# results" in card
    assert "transcribe --model" in card
    (tmp_path / "far").mkdir()
    shutil.copy(tmp_path / "model.zip", tmp_path / "far/model.zip")
    shutil.rmtree(tmp_path / "elsewhere")
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.transcribe", "--model",
                        str(tmp_path / "far/model.zip"),
                        "--decoding", "ctc", wavs[0]], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split("\t", 1)[1].strip() == out[wavs[0]].strip()


def test_two_processes_under_torchrun_as_the_recipe_launches_them(tmp_path):
    """--ngpu N > 1 in the recipe: torchrun starts N processes, ESPnet runs with
    --multiprocessing_distributed false (here on CPU with gloo instead of one GPU each). While the
    frontend is frozen (freeze_steps) it must still be in the graph, or DistributedDataParallel
    stops with "parameters that were not used in producing loss"."""
    data_opts = prepare(tmp_path, "char")
    conf = dict(ASR, decoder=None, model_conf={"ctc_weight": 1.0, "report_cer": False, "report_wer": False},
                best_model_criterion=[["valid", "loss", "min"]], frontend_conf={"layer": "last", "freeze_steps": 2})
    conf.pop("decoder_conf")
    (tmp_path / "ctc.yaml").write_text(yaml.safe_dump(conf))
    exp = tmp_path / "exp_ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
                        "espnet_distill.bin.asr_train", "--config", str(tmp_path / "ctc.yaml"), "--output_dir",
                        str(exp), "--ngpu", "0", "--multiprocessing_distributed", "false", "--dist_backend", "gloo",
                        "--unused_parameters", "true", *data_opts], cwd=tmp_path, capture_output=True, text=True,
                        env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    # the frozen frontend got no gradient at all in its 2 frozen steps: AdamW's step count of its
    # parameters starts when it is unfrozen (zero gradients would have advanced it, and the first
    # updates after unfreezing would be several times too large)
    import torch

    ckpt = torch.load(exp / "checkpoint.pth", map_location="cpu", weights_only=True)
    opt = ckpt["optimizers"][0]
    names = _trainable_names(tmp_path, conf)
    params = opt["param_groups"][0]["params"]
    assert len(params) == len(names)
    steps = {names[i]: int(opt["state"][p]["step"]) for i, p in enumerate(params) if p in opt["state"]}
    fe = [v for k, v in steps.items() if k.startswith("frontend.upstream.")]
    ctc = [v for k, v in steps.items() if k.startswith("ctc.")]
    assert fe, steps
    assert ctc, steps
    assert max(fe) == min(fe) == ctc[0] - 2, steps
    assert re.search(r"\[[^\]\s]+:0/2\]", r.stderr)  # ESPnet's log prefix [host:rank/world]: a world of 2
    assert "distributed: true" in (exp / "config.yaml").read_text()
    assert (exp / "valid.loss.best.pth").is_file()


def _trainable_names(tmp_path, conf) -> list[str]:
    """The parameter names of the ESPnet model of ``conf``, in the order ESPnet gives them to its optimizer."""
    from espnet_distill.asr.task import ASRTask, register

    register()
    parser = ASRTask.get_parser()
    args = parser.parse_args(["--config", str(tmp_path / "ctc.yaml"), "--token_list", str(tmp_path / "tok/tokens.txt"),
                              "--frontend_conf", f"checkpoint={tmp_path / 'student.pt'}"])
    model = ASRTask.build_model(args)
    return [n for n, _ in model.named_parameters()]


def test_specaug_on_the_distilled_frontend_is_refused(tmp_path):
    conf = dict(ASR, specaug="specaug", specaug_conf={"apply_time_mask": True})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(conf))
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.asr_train", "--config", str(tmp_path / "bad.yaml")],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "would mask the student's last layer" in r.stderr
    assert "mask_time_prob" in r.stderr
