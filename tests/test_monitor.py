"""distinct-n (moss_lab/ppo/monitor.py) against a brute-force count, and its place in the
PPO metrics and the app's live charts."""
import math

import numpy as np
import pytest
import torch

from moss_lab.app.context import PLOT_METRICS
from moss_lab.ppo.monitor import distinct_n
from moss_lab.ppo.rollout import Rollout
from moss_lab.ppo.trainer import metrics_row


def brute_force(rows: list[list[int]], n: int) -> float:
    """distinct n-grams / n-grams over the batch, with numpy's sliding windows and unique."""
    windows = [np.lib.stride_tricks.sliding_window_view(np.array(r), n)
               for r in rows if len(r) >= n]
    if not windows:
        return float("nan")
    grams = np.concatenate(windows)
    return len(np.unique(grams, axis=0)) / len(grams)


def padded(rows: list[list[int]], pad: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (B, T) ids and their mask, like a rollout's response columns."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad)
    mask = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, :len(r)] = 1
    return ids, mask


def test_matches_brute_force_on_ragged_masked_batches():
    rng = np.random.default_rng(0)
    for trial in range(30):
        # a small vocabulary, so that n-grams repeat; lengths 0..12 (some shorter than n)
        rows = [rng.integers(1, 5, size=rng.integers(0, 13)).tolist() for _ in range(7)]
        ids, mask = padded(rows)
        for n in (1, 2, 3):
            want = brute_force(rows, n)
            if math.isnan(want):
                assert math.isnan(distinct_n(ids, n, mask))
                continue
            assert distinct_n(ids, n, mask) == pytest.approx(want), (trial, n)
            assert distinct_n(rows, n) == pytest.approx(want)  # lists of ids: the same


def test_texts_count_words():
    texts = ["the cat sat", "the cat ran", "a dog"]
    # bigrams: (the cat) (cat sat) (the cat) (cat ran) (a dog): 4 distinct of 5
    assert distinct_n(texts, 2) == pytest.approx(4 / 5)
    assert distinct_n(texts, 1) == pytest.approx(6 / 8)


def test_short_response_adds_no_ngrams():
    assert distinct_n([[1, 2, 3], [4]], 2) == pytest.approx(2 / 2)
    assert distinct_n([[1, 2, 3], [4]], 1) == pytest.approx(4 / 4)
    assert math.isnan(distinct_n([[1], [2], []], 2))  # no bigram at all: undefined


def test_identical_responses_score_low():
    rows = [[5, 6, 7, 8]] * 8
    assert distinct_n(rows, 2) == pytest.approx(3 / 24)  # = 1/8: one response's worth
    assert distinct_n(rows, 1) == pytest.approx(4 / 32)
    varied = [[5 + i, 6 + i, 7 + i, 8 + i] for i in range(0, 32, 4)]
    assert distinct_n(varied, 2) == 1.0


def test_wrong_variants_give_other_numbers():
    rows = [[1, 2, 1, 2, 1, 2], [3, 4]]
    right = distinct_n(rows, 2)
    assert right == pytest.approx(3 / 6)  # (1 2) (2 1) (3 4) of 6 bigrams
    # counting per response and averaging: (2/5 + 1/1) / 2
    per_response = np.mean([distinct_n([r], 2) for r in rows])
    assert per_response == pytest.approx(0.7) and per_response != pytest.approx(right)
    # including the padding: (3 4 0 0 0 0) adds (4 0) and (0 0) x3
    ids, mask = padded(rows)
    with_padding = distinct_n(ids, 2, torch.ones_like(mask))
    assert with_padding == pytest.approx(5 / 10) and distinct_n(ids, 2, mask) == right
    # dividing by tokens, not n-grams (Li et al.'s scaling): 3 / 8
    assert len(set(tuple(r[i:i + 2]) for r in rows for i in range(len(r) - 1))) / 8 != right


def test_bad_input_says_what_to_do():
    with pytest.raises(ValueError, match="positive whole number"):
        distinct_n([[1, 2]], 0)
    ids, mask = padded([[1, 2, 3]])
    with pytest.raises(ValueError, match="mask"):
        distinct_n(ids, 2)
    with pytest.raises(ValueError, match="same shape"):
        distinct_n(ids, 2, mask[:, :2])
    with pytest.raises(ValueError, match="tensor"):
        distinct_n([[1, 2]], 2, mask)


def fake_rollout(rows: list[list[int]]) -> tuple[Rollout, dict]:
    ids, mask = padded(rows, pad=9)
    b, t = ids.shape
    g = torch.Generator().manual_seed(0)
    batch = Rollout(prompts=["p"] * b, responses=["r"] * b, prompt_ids=torch.ones(b, 2).long(),
                    prompt_mask=torch.ones(b, 2).long(), response_ids=ids, mask=mask,
                    ended=torch.ones(b, dtype=torch.bool), logp=-torch.rand(b, t, generator=g),
                    ref_logp=-torch.rand(b, t, generator=g), values=torch.rand(b, t, generator=g),
                    scores=torch.rand(b, generator=g), entropy=torch.rand(b, t, generator=g))
    return batch, {"score": batch.scores, "beta": 0.05, "kl": torch.rand(b, t, generator=g) * mask,
                   "returns": torch.rand(b, t, generator=g)}


def test_metrics_row_logs_distinct_on_the_real_response_tokens():
    rows = [[1, 2, 1, 2, 1, 2], [3, 4], [1, 2, 3]]
    row = metrics_row(1, *fake_rollout(rows), {}, gold=[1.0, 2.0, 3.0])
    assert row["response/distinct_1"] == pytest.approx(brute_force(rows, 1))
    assert row["response/distinct_2"] == pytest.approx(brute_force(rows, 2))
    # the app's live charts plot only what the trainer logs
    assert set(PLOT_METRICS) <= set(row)
