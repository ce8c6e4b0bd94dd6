"""The benchmark: parameters per part, MACs, and a timing table with speed-ups (tiny models)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from helpers import make_data_dir

from espnet_distill.analysis.benchmark import bench_from_hubert, bench_from_student, macs_per_second
from espnet_distill.analysis.plots import curves
from espnet_distill.bin import benchmark as benchmark_bin
from espnet_distill.nn.hubert import HubertConfig, HubertModel
from espnet_distill.student.export import save_student
from espnet_distill.teacher.checkpoints import save_hubert
from espnet_distill.teacher.teacher import HubertTeacher
from espnet_distill.train.distill import build_student

CONV = [[32, 10, 5], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 3, 2], [32, 2, 2], [32, 2, 2]]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    teacher = HubertModel(HubertConfig(conv_layers=CONV, embed_dim=64, ffn_dim=128, num_layers=4, num_heads=4,
                                       conv_pos=16, conv_pos_groups=4, final_dim=16, num_classes=10))
    save_hubert(d / "teacher.pt", teacher)
    out = {"teacher": d / "teacher.pt"}
    for fe in ("cnn", "fbank"):
        s = {"frontend": fe, "dim": 32, "ffn_dim": 32, "num_layers": 2, "num_heads": 2, "conv_pos": 8,
             "conv_pos_groups": 4, "layer_map": {1: 2, 2: 4}}
        if fe == "cnn":
            s["frontend_conf"] = {"conv_layers": CONV, "layer_norm": False}
        student, _ = build_student({"student": s}, HubertTeacher(teacher))
        (d / fe).mkdir()
        save_student(d / fe / "student.pt", student)
        out[fe] = d / fe / "student.pt"
    return out, teacher


def test_macs_and_params(models):
    paths, teacher = models
    b = bench_from_hubert("t", teacher.eval())
    fe, enc = macs_per_second(b, seconds=1.0)
    # the first conv alone: 32 channels x 10 taps x 3199 frames per second
    assert fe > 32 * 10 * 3199
    assert enc > 0
    assert b.params["heads"] == 16 * 64 + 16 + 10 * 16
    from espnet_distill.student.export import load_student

    s, _ = load_student(paths["fbank"])
    bs = bench_from_student("s", s)
    assert bs.params["frontend"] == 80 * 64 * 5 + 64 + 32 * 32 + 32
    assert bs.frontend_kind == "fbank"


def test_cli_table_with_speedups(models, tmp_path):
    paths, _ = models
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.benchmark", "--checkpoint", str(paths["teacher"]),
                        str(paths["cnn"]), str(paths["fbank"]), "--batch-sizes", "1", "2", "--seconds", "1",
                        "--repeats", "1", "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = [line for line in r.stdout.splitlines() if line.startswith("| ")]
    assert len(lines) == 4  # header and three models
    rows = json.loads((tmp_path / "b.json").read_text())
    fb = next(x for x in rows if x["name"] == "fbank")
    assert fb["time"]["1"]["total"] > 0
    assert fb["checkpoint"] == str(paths["fbank"])
    fb_line = next(line for line in lines if line.startswith("| fbank "))
    assert fb_line.rstrip(" |").split("|")[-1].strip().endswith("x")  # speed-up against the CNN student


@pytest.mark.slow
def test_int8_rows(models, tmp_path):
    paths, _ = models
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.benchmark", "--checkpoint", str(paths["teacher"]),
                        str(paths["fbank"]), "--int8", "--batch-sizes", "1", "--seconds", "1", "--repeats", "1",
                        "--json", str(tmp_path / "b.json")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {x["name"]: x for x in json.loads((tmp_path / "b.json").read_text())}
    teacher = paths["teacher"].parent.name + " (teacher)"
    assert set(rows) == {teacher, "fbank", f"{teacher} int8", "fbank int8"}
    q, f = rows["fbank int8"], rows["fbank"]
    # the same weights and operations, stored and multiplied in int8; timed on their own
    assert q["int8_of"] == "fbank"
    assert q["params"] == f["params"]
    assert q["macs"] == f["macs"]
    assert q["checkpoint"] == f["checkpoint"]
    assert q["time"]["1"]["total"] > 0
    assert "| fbank int8 |" in r.stdout
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.benchmark", "--checkpoint", str(paths["fbank"]),
                        "--int8", "--device", "cuda"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "CPU only" in r.stderr


@pytest.mark.slow
def test_train_step_projects_each_paper_config_against_the_authors_update(tmp_path):
    """Our update of each paper student and the peer's (``--peer DIR``: DIR/peer_step.py, s3prl's
    DistillerForPretrain in docs/benchmarks.md; here a stand-in that checks its arguments and
    reports 0.25 s) timed on the same batch in one run, with their ratio."""
    peer = tmp_path / "peer"
    peer.mkdir()
    (peer / "peer_step.py").write_text(
        "import sys\n"
        "assert sys.argv[1:] == ['cpu', '2', '1.0', '1'], sys.argv\n"
        "print('stand-in DistillerForPretrain: 2 x 1 s, median 0.2500 s per update, 8 audio-s/s')\n")
    r = subprocess.run([sys.executable, "-m", "espnet_distill.bin.benchmark", "--train-step", "--train-batch-seconds",
                        "2", "--utt-seconds", "1", "--repeats", "1", "--json", str(tmp_path / "t.json"),
                        "--peer", str(peer)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {x["name"]: x for x in json.loads((tmp_path / "t.json").read_text())}
    assert set(rows) == {"sw", "dt", "dt_fbank"}
    for x in rows.values():
        assert x["utts"] == 2
        assert x["step"] > 0
        assert x["per_audio_second"] == pytest.approx(x["step"] / 2)
        assert x["projected_hours"] == pytest.approx(x["step"] * x["max_steps"] / 3600)
        assert x["tflop"] > 0
        assert x["tflops"] == pytest.approx(x["tflop"] / x["step"])
    # D&T's update costs more than D&T-Fbank's (same encoder, the CNN front-end's backward)
    assert rows["dt"]["tflop"] > rows["dt_fbank"]["tflop"]
    assert rows["dt_fbank"]["max_steps"] == 27500
    assert "| dt_fbank | 2 x 1 s |" in r.stdout
    for x in rows.values():  # one peer run, the same batch, for every row
        assert x["peer_step"] == 0.25
        assert x["peer_over_ours"] == pytest.approx(x["peer_step"] / x["step"])
    assert "s3prl / ours" in r.stdout


def test_curves_keep_the_last_record_of_a_resumed_step():
    recs = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "loss": 2.5},
            {"step": 2, "split": "valid", "loss": 9}]
    c = curves(recs, ["loss"])
    assert c["train"] == {"step": [1, 2], "loss": [3.0, 2.5]}
    assert c["valid"]["loss"] == [9]


def test_attention_flops_are_counted_analytically():
    from espnet_distill.analysis.benchmark import attention_flops
    from espnet_distill.nn.hubert import HubertConfig, HubertModel

    model = HubertModel(HubertConfig(num_layers=3, embed_dim=64, ffn_dim=64, num_heads=4, conv_pos=8,
                                     conv_pos_groups=4))
    assert attention_flops(model, 2, 50, backward=False) == 3 * 4 * 2 * 50 * 50 * 64
    assert attention_flops(model, 2, 50, backward=True) == 3 * attention_flops(model, 2, 50, backward=False)


@pytest.mark.slow  # two exports, four runtime processes
def test_deployment_benchmark_runs_each_export_in_its_runtime(tmp_path):
    """``benchmark --runtime onnx`` on tiny models: one row per model and graph, from the exported
    folder's own stats (sherpa-onnx for the Fbank student, ONNX Runtime for the teacher)."""
    from helpers import tiny_student_conf, tiny_teacher

    from espnet_distill.analysis.onnx_bench import onnx_table
    from espnet_distill.student.export import save_student
    from espnet_distill.teacher.checkpoints import save_hubert
    from espnet_distill.train.distill import build_student

    teacher = tiny_teacher()
    save_hubert(tmp_path / "teacher.pt", teacher.model)
    student, _ = build_student(tiny_student_conf("fbank"), teacher)
    save_student(tmp_path / "fbank.pt", student)
    rows, table = onnx_table(seconds=1.0, repeats=2, workdir=str(tmp_path / "w"),
                             models=[("tiny teacher", tmp_path / "teacher.pt"), ("tiny fbank", tmp_path / "fbank.pt")])
    assert [(r["name"], r["graph"], r["runtime"]) for r in rows] == [
        ("tiny teacher", "fp32", "onnxruntime"), ("tiny teacher", "int8", "onnxruntime"),
        ("tiny fbank", "fp32", "sherpa-onnx (WeNet CTC)"), ("tiny fbank", "int8", "sherpa-onnx (WeNet CTC)")]
    for r in rows:
        assert r["utterances"] == 2
        assert r["ms_per_audio_second"] > 0
        assert r["peak_rss_mb"] > 10
        assert r["mb"] > 0
    assert rows[0]["speedup_vs_teacher_fp32"] == 1.0
    assert "| tiny fbank | int8 | sherpa-onnx (WeNet CTC) |" in table


def test_cli_target_drift_of_a_teacher_checkpoint(models, tmp_path, capsys):
    paths, _ = models
    data = make_data_dir(tmp_path, {f"s1-u{i}": ("s1", "a") for i in range(3)})
    out = tmp_path / "drift.json"
    assert benchmark_bin.main(["--target-drift", str(data), "--checkpoint", str(paths["teacher"]), "--max-utts", "2",
                               "--json", str(out)]) == 0
    assert f"teacher: {paths['teacher']}; 2 utterances of {data}" in capsys.readouterr().out
    drift = json.loads(out.read_text())
    assert sorted(drift) == ["bfloat16", "float16"]
    assert sorted(map(int, drift["bfloat16"])) == [0, 4]  # every 4th layer and the last of the 4
    assert 0 < drift["bfloat16"]["4"]["rel_l1"] < 0.05
