"""The teacher's target drift in lower precision: none in fp32, rounding-sized in bf16."""
from __future__ import annotations

import torch
from helpers import tiny_teacher, toy_batch

from espnet_distill.analysis.precision import drift_table, target_drift


def test_target_drift_is_rounding_sized_and_zero_in_fp32():
    batch = toy_batch()
    drift = target_drift(tiny_teacher(), batch["wav"], batch["lengths"], [torch.float32, torch.bfloat16], [0, 4])
    assert all(drift["float32"][layer] == {"rel_l1": 0.0, "cos": 1.0} for layer in (0, 4))
    for layer in (0, 4):
        assert 1e-4 < drift["bfloat16"][layer]["rel_l1"] < 0.05
        assert 0.99 < drift["bfloat16"][layer]["cos"] <= 1.0
    table = drift_table(drift)
    assert "| 4 | 0.00e+00 | 1.000000 |" in table
    assert "bfloat16 rel. L1" in table
