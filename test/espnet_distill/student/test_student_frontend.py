"""Front-ends: Kaldi-exact fbank, CNN-exact frame counts, padding invariance."""
from __future__ import annotations

import pytest
import torch
import torchaudio

from espnet_distill.data.audio import cnn_frames
from espnet_distill.nn.hubert import DEFAULT_CONV, conv_output_lengths
from espnet_distill.student.frontend import CNNFrontend, FbankFrontend, estimate_cmvn


def test_batched_fbank_matches_torchaudio_kaldi():
    torch.manual_seed(0)
    fe = FbankFrontend(dim=16)
    lengths = torch.tensor([8000, 5123])
    wav = torch.randn(2, 8000) * 0.1
    fb, mask = fe.fbank(wav, lengths)
    for i, n in enumerate(lengths.tolist()):
        ref = torchaudio.compliance.kaldi.fbank(wav[i:i + 1, :n] * 32768, num_mel_bins=80, dither=0.0,
                                                sample_frequency=16000, frame_length=25.0, frame_shift=10.0)
        assert int(mask[i].sum()) == ref.shape[0]
        torch.testing.assert_close(fb[i, : ref.shape[0]], ref, atol=2e-3, rtol=1e-4)


def test_fbank_frames_equal_cnn_frames_for_every_length():
    fe = FbankFrontend(dim=8, dropout=0.0).eval()
    # the boundaries, where a new frame starts, are 400 + 320 k: test both sides of several
    boundaries = [400 + 320 * k + d for k in (0, 1, 2, 5, 49, 50) for d in (-1, 0, 1) if 400 + 320 * k + d >= 400]
    lengths = torch.tensor(list(range(400, 1400, 7)) + boundaries)
    conv = conv_output_lengths(lengths, DEFAULT_CONV)
    assert torch.equal(cnn_frames(lengths), conv)
    for n in lengths.tolist():
        x, mask = fe(torch.randn(1, n) * 0.1, torch.tensor([n]))
        assert x.shape[1] == int(mask.sum()) == (n - 400) // 320 + 1, n
    x, mask = fe(torch.randn(len(lengths), int(lengths.max())), lengths)
    assert torch.equal(mask.sum(1), conv)


def test_frontends_are_padding_invariant():
    torch.manual_seed(1)
    for fe in (FbankFrontend(dim=8, dropout=0.0),
               CNNFrontend(dim=8, conv_layers=[[8, 10, 5]] + [[8, 3, 2]] * 4 + [[8, 2, 2]] * 2)):
        fe.eval()
        a = torch.randn(1, 5000) * 0.1
        batch = torch.randn(2, 7000) * 0.1
        batch[0, :5000] = a[0]
        batch[0, 5000:] = 0.7  # garbage in the padding must not leak in
        alone, m1 = fe(a, torch.tensor([5000]))
        both, m2 = fe(batch, torch.tensor([5000, 7000]))
        t = int(m1.sum())
        assert int(m2[0].sum()) == t
        torch.testing.assert_close(alone[0, :t], both[0, :t], atol=1e-5, rtol=1e-5)


def test_cmvn_estimate_normalises():
    fe = FbankFrontend(dim=8)
    torch.manual_seed(2)
    batches = [{"wav": torch.randn(2, 6000) * 0.2, "lengths": torch.tensor([6000, 4000])} for _ in range(3)]
    mean, std, n = estimate_cmvn(fe, batches)
    fe.set_cmvn(mean, std)
    fb, m = fe.fbank(batches[0]["wav"], batches[0]["lengths"])
    z = (fb[m] - fe.cmvn_mean) / fe.cmvn_std
    assert n == 3 * ((6000 - 400) // 160 + 1 + (4000 - 400) // 160 + 1)
    assert abs(float(z.mean())) < 0.3
    assert "cmvn_mean" in fe.state_dict()
    assert "mel" not in fe.state_dict()


def test_feature_grad_mult_scales_the_feature_extractor_alone():
    """s3prl's feature_grad_mult: the CNN (fbank: Conv1d + GLU) gets that share of its gradient, the
    layers after it their whole gradient, and 0 freezes it; the forward pass is unchanged."""
    import pytest

    torch.manual_seed(0)
    wav, lengths = torch.randn(2, 6000) * 0.1, torch.tensor([6000, 4500])
    conv = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]
    for make, inner, outer in ((lambda **k: CNNFrontend(24, conv, **k), "feature_extractor.conv_layers.0.0.weight",
                                "post_extract_proj.weight"),
                               (lambda **k: FbankFrontend(24, dropout=0.0, **k), "conv.weight", "proj.weight")):
        grads, outs = {}, {}
        for scale in (1.0, 0.1, 0.0):
            torch.manual_seed(1)
            fe = make(feature_grad_mult=scale)
            out, mask = fe(wav, lengths)
            (out * mask[..., None]).pow(2).sum().backward()
            named = dict(fe.named_parameters())
            grads[scale] = (named[inner].grad, named[outer].grad)
            outs[scale] = out.detach()
        torch.testing.assert_close(outs[0.1], outs[1.0])
        torch.testing.assert_close(grads[0.1][0], 0.1 * grads[1.0][0])
        torch.testing.assert_close(grads[0.1][1], grads[1.0][1])
        assert grads[0.0][0] is None
        assert grads[0.0][1] is not None
    with pytest.raises(ValueError, match=r"feature_grad_mult = 1.5: expected a gradient scale in \[0, 1\]"):
        CNNFrontend(24, conv, feature_grad_mult=1.5)


def test_proj_init_is_the_authors_xavier_normal_when_asked():
    from espnet_distill.student.model import Student, StudentConfig

    torch.manual_seed(0)
    fork = FbankFrontend(dim=256, proj_init="xavier_normal").proj
    assert torch.equal(fork.bias, torch.zeros(256))
    assert fork.weight.std().item() == pytest.approx((2 / (256 + 256)) ** 0.5, rel=0.05)  # N(0, 2 / (in + out))
    default = FbankFrontend(dim=256).proj  # nn.Linear's U(-1/sqrt(in), 1/sqrt(in)), bias too
    assert default.weight.abs().max().item() <= 1 / 16 and default.bias.abs().sum().item() > 0
    with pytest.raises(ValueError, match=r"student.frontend_conf: proj_init 'normal': expected one of "
                                         r"\['pytorch', 'xavier_normal'\]"):
        Student(StudentConfig(frontend="fbank", frontend_conf={"proj_init": "normal"}, dim=8, ffn_dim=8,
                              num_layers=1, num_heads=2, conv_pos=4, conv_pos_groups=2))
