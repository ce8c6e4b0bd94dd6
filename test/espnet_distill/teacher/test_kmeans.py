"""Teacher labels: MFCC frames, k-means fitted shard by shard, the labels written per set."""
from __future__ import annotations

import json

import torch

from espnet_distill.checkpoint_io import safe_load
from espnet_distill.nn.hubert import DEFAULT_CONV, conv_output_lengths
from espnet_distill.teacher import kmeans


def test_mfcc_frames_match_cnn_frames():
    for n in [400, 401, 719, 720, 721, 16000, 16001, 33333]:
        f = kmeans.mfcc_frames(torch.randn(n) * 0.1)
        assert f.shape == (int(conv_output_lengths(torch.tensor([n]), DEFAULT_CONV)), 39), n


def test_kmeans_labels_recover_clusters():
    torch.manual_seed(0)
    centers = torch.randn(4, 6) * 5
    x = torch.cat([c + 0.1 * torch.randn(300, 6) for c in centers])
    km = kmeans.fit_kmeans(x, 4, seed=0)
    labels = kmeans.assign_labels(x, km)
    for i in range(4):
        block = labels[i * 300:(i + 1) * 300]
        assert (block == block[0]).all()
    assert len(set(labels.tolist())) == 4
    assert km["inertia"] < 0.1


def test_kmeans_input_streams_shard_by_shard(tmp_path):
    """Shards are memory-mapped one at a time: the sample, the CMVN statistics and the labels
    equal those of all frames loaded at once."""
    from espnet_distill.checkpoint_io import atomic_save

    torch.manual_seed(0)
    paths, all_feats = [], []
    for i in range(3):
        lengths = torch.randint(5, 40, (4,))
        feats = torch.randn(int(lengths.sum()), 6) * (i + 1) + i
        atomic_save({"utts": [f"s{i}-u{j}" for j in range(4)], "lengths": lengths, "feats": feats},
                    tmp_path / f"f{i}.pt")
        paths.append(tmp_path / f"f{i}.pt")
        all_feats.append(feats)
    everything = torch.cat(all_feats)
    sample, mean, std, total = kmeans.sample_feature_shards(paths, 10 ** 6)
    assert total == len(everything)
    assert torch.equal(sample, everything)
    torch.testing.assert_close(mean, everything.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(std, everything.std(0), atol=1e-5, rtol=0)
    sub, _, _, _ = kmeans.sample_feature_shards(paths, 50, seed=1)
    assert len(sub) == 50
    assert all((everything == row).all(1).any() for row in sub)
    km = kmeans.fit_kmeans(sample, 4, seed=0, mean=mean, std=std)
    counts = kmeans.label_shards(paths, km, tmp_path / "labels.train")
    utts, lengths, feats = kmeans.load_feature_shards(paths)
    kmeans.write_labels(tmp_path / "labels.ref", utts, lengths, kmeans.assign_labels(feats, km))
    assert (tmp_path / "labels.train").read_text() == (tmp_path / "labels.ref").read_text()
    assert int(counts.sum()) == total


def test_kmeans_step_writes_labels_and_stats(pretrain_corpus):
    stats = json.loads((pretrain_corpus / "km/kmeans.json").read_text())
    assert stats["n_clusters"] == 8
    assert stats["inertia"] > 0
    assert 0 < stats["valid_majority_rate"] < 1
    labels = kmeans.read_labels(pretrain_corpus / "km/labels.train")
    d = safe_load(pretrain_corpus / "train.pt")
    assert [len(labels[u]) for u in d["utts"]] == d["lengths"].tolist()
