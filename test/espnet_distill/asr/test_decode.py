"""CTC decoding: the grammar decoder picks the allowed transcript of highest CTC likelihood."""
from __future__ import annotations

import torch

from espnet_distill.asr.decode import ctc_best_of


def frames(*tokens: int, vocab: int = 4) -> torch.Tensor:
    """(T, V) log-probabilities that put 0.9 on each frame's token."""
    p = torch.full((len(tokens), vocab), 0.1 / (vocab - 1))
    p[torch.arange(len(tokens)), torch.tensor(tokens)] = 0.9
    return p.log()


def test_the_most_likely_candidate_wins_for_each_utterance():
    log_probs = torch.stack([frames(1, 1, 0, 2, 2, 0), frames(0, 3, 3, 0, 0, 0), frames(2, 0, 1, 0, 0, 0)])
    candidates = [[1, 2], [3], [2, 1], [1, 1]]
    best = ctc_best_of(log_probs, torch.tensor([6, 6, 3]), candidates, blank=0)
    assert best.tolist() == [0, 1, 2]  # the third utterance's last three frames are padding
    assert ctc_best_of(log_probs, torch.tensor([6, 6, 6]), [[3], [1, 2]], blank=0).tolist() == [1, 0, 1]


def test_an_utterance_too_short_for_every_candidate_gets_the_first():
    log_probs = frames(1, 2, 3)[None]
    assert ctc_best_of(log_probs, torch.tensor([1]), [[1, 2], [2, 1, 3]], blank=0).tolist() == [0]
