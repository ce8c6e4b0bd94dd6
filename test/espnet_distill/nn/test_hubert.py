"""HuBERT modules: a batch without padding takes the mask-free path (flash attention, no masked CNN
passes) and gives what the masked path gives."""
from __future__ import annotations

import torch

from espnet_distill.nn import hubert
from espnet_distill.nn.hubert import HubertConfig, HubertModel

CONV16 = [[16, 10, 5], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 3, 2], [16, 2, 2], [16, 2, 2]]


def test_unpadded_batches_skip_the_masks_and_match_the_masked_path(monkeypatch):
    torch.manual_seed(0)
    for mode in ("default", "layer_norm"):
        model = HubertModel(HubertConfig(conv_layers=CONV16, extractor_mode=mode, embed_dim=32, ffn_dim=64,
                                         num_layers=2, num_heads=2, conv_pos=8, conv_pos_groups=4)).eval()
        wav, lengths = torch.randn(3, 6000) * 0.1, torch.full((3,), 6000)
        seen = []
        orig = torch.nn.functional.scaled_dot_product_attention
        monkeypatch.setattr(hubert.F, "scaled_dot_product_attention",
                            lambda *a, seen=seen, orig=orig, **k: seen.append(k.get("attn_mask")) or orig(*a, **k))
        fast, mask = model(wav, lengths)
        assert mask.all()
        assert seen
        assert all(m is None for m in seen)  # no mask handed to attention
        monkeypatch.setattr(hubert, "unpadded", lambda lengths, width: False)  # force the masked path
        slow, _ = model(wav, lengths)
        for a, b in zip(fast, slow):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        monkeypatch.undo()
    assert hubert.unpadded(torch.tensor([5, 5]), 5)
    assert not hubert.unpadded(torch.tensor([5, 4]), 5)


def test_positional_conv_in_bf16_on_cpu_rounds_only():
    """The grouped positional convolution in bf16 (weights cast, or under autocast) stays within
    rounding of fp32 on every CPU (oneDNN's own bf16 grouped conv1d does not on AVX512-BF16 ones)."""
    from espnet_distill.nn.hubert import WeightNormConv1d

    torch.manual_seed(0)
    conv, x = WeightNormConv1d(32, 8, 4), torch.randn(2, 32, 18)
    with torch.no_grad():
        ref = conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = conv(x)
        cast = conv.to(torch.bfloat16)(x.bfloat16())
    for y in (auto, cast):
        assert y.dtype == torch.bfloat16
        assert float((y.float() - ref).abs().mean() / ref.abs().mean()) < 0.01
