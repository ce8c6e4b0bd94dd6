"""Teacher pretraining: features, masks, k-means labels, and the trainer's resume and DDP."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import need

from espnet_distill.data.synth_en import plan_corpus, synthesize_specs, write_data_dir
from espnet_distill.nn.hubert import conv_output_lengths, DEFAULT_CONV
from espnet_distill.teacher import pretrain as pt
from espnet_distill.teacher.checkpoints import load_hubert, safe_load

ROOT = Path(__file__).resolve().parents[3]


def test_mfcc_frames_match_cnn_frames():
    for n in [400, 401, 719, 720, 721, 16000, 16001, 33333]:
        f = pt.mfcc_frames(torch.randn(n) * 0.1)
        assert f.shape == (int(conv_output_lengths(torch.tensor([n]), DEFAULT_CONV)), 39), n


def test_span_mask_covers_valid_frames_only():
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor([200, 120, 15])
    m = pt.span_mask(lengths, 200, 0.8, 10, g)
    assert not m[1, 120:].any() and not m[2, 15:].any()
    frac = m[0].float().mean()
    assert 0.4 < frac < 0.75  # 0.8 / 10 span starts per frame, overlapping: about 55 %
    m2 = pt.span_mask(lengths, 200, 0.8, 10, torch.Generator().manual_seed(0))
    assert torch.equal(m, m2)


def test_kmeans_labels_recover_clusters():
    torch.manual_seed(0)
    centers = torch.randn(4, 6) * 5
    x = torch.cat([c + 0.1 * torch.randn(300, 6) for c in centers])
    km = pt.fit_kmeans(x, 4, seed=0)
    labels = pt.assign_labels(x, km)
    for i in range(4):
        block = labels[i * 300:(i + 1) * 300]
        assert (block == block[0]).all()
    assert len(set(labels.tolist())) == 4 and km["inertia"] < 0.1


def test_kmeans_input_streams_shard_by_shard(tmp_path):
    """Shards are memory-mapped one at a time: the sample, the CMVN statistics and the labels
    equal those of all frames loaded at once."""
    from espnet_distill.teacher.checkpoints import atomic_save

    torch.manual_seed(0)
    paths, all_feats = [], []
    for i in range(3):
        lengths = torch.randint(5, 40, (4,))
        feats = torch.randn(int(lengths.sum()), 6) * (i + 1) + i
        atomic_save({"utts": [f"s{i}-u{j}" for j in range(4)], "lengths": lengths, "feats": feats}, tmp_path / f"f{i}.pt")
        paths.append(tmp_path / f"f{i}.pt")
        all_feats.append(feats)
    everything = torch.cat(all_feats)
    sample, mean, std, total = pt.sample_feature_shards(paths, 10 ** 6)
    assert total == len(everything) and torch.equal(sample, everything)
    torch.testing.assert_close(mean, everything.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, everything.std(0), atol=1e-5, rtol=0)
    sub, _, _, _ = pt.sample_feature_shards(paths, 50, seed=1)
    assert len(sub) == 50 and all((everything == row).all(1).any() for row in sub)
    km = pt.fit_kmeans(sample, 4, seed=0, mean=mean, std=std)
    counts = pt.label_shards(paths, km, tmp_path / "labels.train")
    utts, lengths, feats = pt.load_feature_shards(paths)
    pt.write_labels(tmp_path / "labels.ref", utts, lengths, pt.assign_labels(feats, km))
    assert (tmp_path / "labels.train").read_text() == (tmp_path / "labels.ref").read_text()
    assert int(counts.sum()) == total


TINY_CONF = {
    "backend": "pretrain",
    "model": {"conv_layers": [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]],
              "embed_dim": 32, "ffn_dim": 64, "num_layers": 2, "num_heads": 2, "conv_pos": 8, "conv_pos_groups": 4,
              "final_dim": 16, "dropout": 0.1},
    "mask": {"prob": 0.8, "length": 5},
    "train": {"max_steps": 8, "lr": 0.002, "warmup_ratio": 0.25, "max_batch_seconds": 12, "ckpt_every": 1,
              "log_every": 1, "seed": 3},
}


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    need("espeak-ng")
    root = tmp_path_factory.mktemp("corpus")
    plan_corpus(root / "plan", seed=1, train_hours=0.012, dev_utts=4, test_utts=2)
    for s in ("train", "dev"):
        synthesize_specs(root / "plan" / s / "spec.scp", root / "wav", progress=False)
        write_data_dir(root / "plan" / s / "spec.scp", root / "wav", root / "data" / s)
    feats = {}
    for s in ("train", "dev"):
        feats[s] = root / f"{s}.pt"
        pt.dump_features(root / "data" / s, feats[s])
    subprocess.run([sys.executable, "-m", "espnet_distill.bin.teacher_pretrain", "kmeans", "--train-feats",
                    str(feats["train"]), "--label", f"train={feats['train']}", f"valid={feats['dev']}",
                    "--n-clusters", "8", "--outdir", str(root / "km")], check=True, capture_output=True)
    (root / "conf.yaml").write_text(yaml.safe_dump(TINY_CONF))
    return root


def train_cmd(root: Path, outdir: Path, launcher=None):
    return (launcher or [sys.executable]) + [
        "-m", "espnet_distill.bin.teacher_pretrain", "train", "--config", str(root / "conf.yaml"),
        "--train-dir", str(root / "data/train"), "--valid-dir", str(root / "data/dev"),
        "--labels-dir", str(root / "km"), "--outdir", str(outdir)]


def test_kmeans_step_writes_labels_and_stats(tiny_corpus):
    stats = json.loads((tiny_corpus / "km/kmeans.json").read_text())
    assert stats["n_clusters"] == 8 and stats["inertia"] > 0 and 0 < stats["valid_majority_rate"] < 1
    labels = pt.read_labels(tiny_corpus / "km/labels.train")
    d = safe_load(tiny_corpus / "train.pt")
    assert [len(labels[u]) for u in d["utts"]] == d["lengths"].tolist()


def test_pretraining_writes_teacher_summary_and_curves(tiny_corpus, tmp_path):
    r = subprocess.run(train_cmd(tiny_corpus, tmp_path / "run"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    s = json.loads((tmp_path / "run/summary.json").read_text())
    for k in ("params", "train_hours", "kmeans_inertia", "dev_masked_acc", "dev_majority_rate"):
        assert s[k] is not None, k
    assert (tmp_path / "run/curves.png").stat().st_size > 1000
    curves = json.loads((tmp_path / "run/curves.json").read_text())
    assert curves["train"]["step"] == list(range(1, 9))
    model, meta = load_hubert(tmp_path / "run/teacher.pt")
    assert model.has_codebook and model.cfg.num_classes == 8 and meta["format"] == "espnet_distill"
    saved = yaml.safe_load((tmp_path / "run/config.yaml").read_text())
    assert saved["train"]["max_steps"] == 8 and saved["model"]["embed_dim"] == 32


def test_killed_run_resumes_exactly(tiny_corpus, tmp_path):
    ref = subprocess.run(train_cmd(tiny_corpus, tmp_path / "ref"), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    # The trainer SIGKILLs itself after the update of step 5, before that step's checkpoint.
    killed = subprocess.run(train_cmd(tiny_corpus, tmp_path / "killed"), capture_output=True, text=True,
                            env=dict(os.environ, ESPNET_DISTILL_KILL_AT_STEP="5"))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    ckpt = tmp_path / "killed/checkpoint.pt"
    step_at_kill = safe_load(ckpt)["step"]
    assert step_at_kill == 4 and not (tmp_path / "killed/teacher.pt").exists()
    r = subprocess.run(train_cmd(tiny_corpus, tmp_path / "killed"), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resumed from {ckpt} at step {step_at_kill}" in r.stderr
    a = safe_load(tmp_path / "ref/teacher.pt")["state_dict"]
    b = safe_load(tmp_path / "killed/teacher.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_refuses_a_checkpoint_of_another_config(tiny_corpus, tmp_path):
    first = subprocess.run(train_cmd(tiny_corpus, tmp_path / "run"), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    other = dict(TINY_CONF, train=dict(TINY_CONF["train"], lr=0.01))
    (tiny_corpus / "other.yaml").write_text(yaml.safe_dump(other))
    cmd = train_cmd(tiny_corpus, tmp_path / "run")
    cmd[cmd.index("--config") + 1] = str(tiny_corpus / "other.yaml")
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode != 0 and "was written by a run with another configuration" in r.stderr
    assert safe_load(tmp_path / "run/checkpoint.pt")["step"] == 8  # nothing was overwritten


def test_two_process_ddp_on_cpu(tiny_corpus, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    r = subprocess.run(train_cmd(tiny_corpus, tmp_path / "ddp", launcher), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0/2: weights identical on all ranks" in r.stderr
    assert "rank 1/2: weights identical on all ranks" in r.stderr
    assert (tmp_path / "ddp/teacher.pt").is_file()


def test_two_process_run_killed_resumes_exactly(tiny_corpus, tmp_path):
    """Every rank's RNG state is in the checkpoint: a 2-process run killed after step 5 and
    resumed ends bit-identical to an uninterrupted 2-process run."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    ref = subprocess.run(train_cmd(tiny_corpus, tmp_path / "ref", launcher), capture_output=True, text=True, env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = subprocess.run(train_cmd(tiny_corpus, tmp_path / "killed", launcher), capture_output=True, text=True,
                            env=dict(env, ESPNET_DISTILL_KILL_AT_STEP="5"))
    assert killed.returncode != 0
    state = safe_load(tmp_path / "killed/checkpoint.pt")
    assert state["step"] == 4 and len(state["rng_per_rank"]) == 2
    assert not torch.equal(state["rng_per_rank"][0]["torch"], state["rng_per_rank"][1]["torch"])
    r = subprocess.run(train_cmd(tiny_corpus, tmp_path / "killed", launcher), capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    a = safe_load(tmp_path / "ref/teacher.pt")["state_dict"]
    b = safe_load(tmp_path / "killed/teacher.pt")["state_dict"]
    for k in a:
        assert torch.equal(a[k], b[k]), k
