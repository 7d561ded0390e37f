"""Watching for pattern collapse during PPO (Labs 06-08, the app's PPO tab).

MOSS-RLHF Part I: the reward is a poor stability signal, since it keeps rising while the
policy exploits the reward model. Pattern collapse shows in the text instead: responses
grow longer and more repetitive, and drift away from what the reference model would say.
The trainer logs three of these signals (response/length, response/ref_perplexity,
objective/kl); this file adds the fourth, the share of distinct n-grams (Li et al. 2016):

    distinct-n = |U_i {n-grams of response i}| / sum_i max(0, L_i - n + 1)

over the whole batch: one set of n-grams shared by all responses, divided by the number
of n-grams in them (L_i: the real tokens of response i, padding excluded). 1 means no
n-gram occurs twice anywhere in the batch; a batch of one response repeated B times
scores at most 1/B. A response shorter than n has no n-grams and adds nothing.
(Li et al. divide by the number of tokens; dividing by the number of n-grams lets a
batch without repeats reach 1 for every n. For n = 1 the two agree.)
"""
from __future__ import annotations

from collections.abc import Sequence

import torch


def ngrams(tokens: Sequence, n: int) -> list[tuple]:
    """The n-grams of one token sequence, in order ([] when it is shorter than n)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def response_tokens(responses, mask: torch.Tensor | None = None) -> list[list]:
    """Each response as a list of tokens.

    responses: strings (split into words on whitespace: the toy world's tokens), lists of
               token ids, or a (B, T) tensor of token ids together with `mask`.
    mask:      (B, T), 1 on the real response tokens (the rollout's mask: right padding
               excluded, <eos> included), required with a tensor."""
    if isinstance(responses, torch.Tensor):
        if mask is None or mask.shape != responses.shape:
            raise ValueError(f"a tensor of responses needs a mask of the same shape "
                             f"{tuple(responses.shape)} marking the real tokens (got "
                             f"{None if mask is None else tuple(mask.shape)})")
        keep = mask.bool().tolist()
        return [[t for t, k in zip(row, ks) if k]
                for row, ks in zip(responses.tolist(), keep)]
    if mask is not None:
        raise ValueError("mask goes with a (B, T) tensor of token ids; lists and strings "
                         "hold only their real tokens already")
    return [r.split() if isinstance(r, str) else list(r) for r in responses]


def distinct_n(responses, n: int, mask: torch.Tensor | None = None) -> float:
    """distinct-n of a batch of responses (module docstring); nan when no response has n
    tokens (no n-grams to count)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive whole number (1: words, 2: word pairs), got {n!r}")
    grams = [g for tokens in response_tokens(responses, mask) for g in ngrams(tokens, n)]
    return len(set(grams)) / len(grams) if grams else float("nan")
