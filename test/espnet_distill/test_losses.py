"""Losses: hand-computed values, padding invariance, and where gradients go."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from espnet_distill.losses import disc_loss, frontend_loss, mean, reg_loss


def layer_loss(pred, target, mask, lam=1.0):
    """One layer's L_reg and its L1 and cosine, as means over valid frames."""
    loss, stats = reg_loss({1: pred}, {1: target}, mask, lam)
    return mean(loss), mean(stats["l1_1"]), mean(stats["cos_1"])


def test_reg_loss_hand_computed():
    pred = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])  # (1, 2, 2)
    target = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    mask = torch.tensor([[True, True]])
    loss, l1, cos = layer_loss(pred, target, mask, lam=1.0)
    # frame 1: L1 = 0.5, cos = 1/sqrt(2); frame 2: L1 = 0.5, cos = 1
    c1 = 1 / math.sqrt(2)
    expected = ((0.5 - math.log(1 / (1 + math.exp(-c1)))) + (0.5 - math.log(1 / (1 + math.exp(-1.0))))) / 2
    assert abs(float(loss) - expected) < 1e-6
    assert abs(float(l1) - 0.5) < 1e-6
    assert abs(float(cos) - (c1 + 1) / 2) < 1e-6
    total, frames = reg_loss({1: pred}, {1: target}, mask)[0]
    assert float(frames) == 2
    assert abs(float(total) - 2 * expected) < 1e-6  # a sum and its count


def test_disc_loss_hand_computed():
    t = torch.log(torch.tensor([[[0.5, 0.5]]]))
    s = torch.log(torch.tensor([[[0.25, 0.75]]]))
    m = torch.ones(1, 1, dtype=torch.bool)
    kl = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert abs(float(mean(disc_loss(s, t, m, "kl"))) - kl) < 1e-6
    t2 = torch.log(torch.tensor([[[0.2, 0.8]]]))
    assert abs(float(mean(disc_loss(s, t2, m, "ce"))) + math.log(0.75)) < 1e-6
    assert float(mean(disc_loss(t, t, m, "kl"))) < 1e-7


def test_alone_and_padded_give_the_same_loss():
    torch.manual_seed(0)
    p, t = torch.randn(1, 5, 4), torch.randn(1, 5, 4)
    sl, tl = torch.randn(1, 5, 6), torch.randn(1, 5, 6)
    m = torch.ones(1, 5, dtype=torch.bool)
    # the same utterance padded to 9 frames with garbage, in a batch with itself
    pad = lambda x: torch.cat([x, 100 * torch.randn(1, 4, x.shape[-1])], 1)  # noqa: E731
    P, T = torch.cat([pad(p), pad(p)]), torch.cat([pad(t), pad(t)])
    SL, TL = torch.cat([pad(sl), pad(sl)]), torch.cat([pad(tl), pad(tl)])
    M = torch.zeros(2, 9, dtype=torch.bool)
    M[:, :5] = True
    a, _ = reg_loss({4: p}, {4: t}, m)
    b, _ = reg_loss({4: P}, {4: T}, M)
    torch.testing.assert_close(mean(a), mean(b))
    torch.testing.assert_close(mean(disc_loss(sl, tl, m)), mean(disc_loss(SL, TL, M)))
    torch.testing.assert_close(mean(disc_loss(sl, tl, m, "ce")), mean(disc_loss(SL, TL, M, "ce")))
    torch.testing.assert_close(mean(frontend_loss(p, t, m)), mean(frontend_loss(P, T, M)))


def test_reg_loss_averages_layers_and_gradients_reach_only_predictions():
    torch.manual_seed(1)
    w = torch.nn.Linear(4, 4)
    x = torch.randn(2, 3, 4, requires_grad=True)
    m = torch.tensor([[True, True, False], [True, False, False]])  # padded frames must get no gradient
    t4, t8 = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    teacher_logits = torch.randn(2, 3, 5)
    loss, stats = reg_loss({4: w(x), 8: w(x) * 2}, {4: t4, 8: t8}, m)
    l4, _, _ = layer_loss(w(x), t4, m)
    l8, _, _ = layer_loss(w(x) * 2, t8, m)
    torch.testing.assert_close(mean(loss), (l4 + l8) / 2)
    assert set(stats) >= {"l1_4", "cos_4", "l1_8", "cos_8", "reg"}
    total = mean(loss) + mean(disc_loss(F.pad(w(x), (0, 1)), teacher_logits, m))
    total.backward()
    assert w.weight.grad is not None
    assert float(w.weight.grad.abs().sum()) > 0
    assert float(x.grad[~m].abs().sum()) == 0
    assert float(x.grad[m].abs().sum()) > 0


def test_reg_loss_in_lower_precision_matches_fp32():
    """fp16/bf16 predictions and targets (autocast, an amp teacher) give the fp32 loss to rounding;
    the fp32 path equals torch's cosine similarity."""
    torch.manual_seed(3)
    p, t = torch.randn(2, 7, 16) * 3, torch.randn(2, 7, 16) * 3
    m = torch.ones(2, 7, dtype=torch.bool)
    _, l1, cos = layer_loss(p, t, m)
    torch.testing.assert_close(cos, F.cosine_similarity(p, t, dim=-1).mean())
    ref = mean(reg_loss({1: p}, {1: t}, m)[0])
    for dtype in (torch.float16, torch.bfloat16):
        got = reg_loss({1: p.to(dtype)}, {1: t}, m)[0]
        assert got[0].dtype == torch.float32
        torch.testing.assert_close(mean(got), ref, atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(mean(reg_loss({1: p.to(dtype)}, {1: t.to(dtype)}, m)[0]), ref, atol=2e-2, rtol=1e-2)
