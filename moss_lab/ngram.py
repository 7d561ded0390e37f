"""N-gram overlap metrics (BLEU, ROUGE-L) and rank correlations, for lab 12's question:
does word overlap with a reference answer measure what people want?

    bleu(hypothesis, references)   sacrebleu's sentence BLEU, 0..100
    rouge_l(hypothesis, reference) rouge-score's ROUGE-L F-measure, 0..1
    spearman(x, y), kendall_tau(x, y)   how alike two scorings order the same items

BLEU (Papineni et al. 2002) = BP * exp(mean_{k=1..4} log p_k), p_k the clipped k-gram
precision against the references, BP = min(1, exp(1 - ref_len / hyp_len)); a sentence
has few 4-grams, so sacrebleu smooths (method "exp") by default. ROUGE-L (Lin 2004) is
the F-measure of the longest common subsequence: P = LCS / len(hyp), R = LCS / len(ref),
F = 2PR / (P + R), on rouge-score's default tokens (lower-cased words; punctuation dropped).

Rank correlations (no scipy needed; ties are common: the gold score is discrete):

    spearman  = Pearson correlation of the average ranks (ties share their mean rank)
    kendall   = tau-b = (C - D) / sqrt((n0 - n1) (n0 - n2)), over all pairs i < j:
                C concordant, D discordant, n0 = n(n-1)/2, n1 / n2 pairs tied in x / y
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np


def bleu(hypothesis: str, references: str | Sequence[str]) -> float:
    """Sentence BLEU (0..100) of one hypothesis against one or more references."""
    import sacrebleu

    refs = [references] if isinstance(references, str) else list(references)
    return float(sacrebleu.sentence_bleu(hypothesis, refs).score)


@lru_cache(maxsize=1)
def _rouge_l_scorer():
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"])


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F-measure (0..1) of one hypothesis against one reference."""
    return float(_rouge_l_scorer().score(reference, hypothesis)["rougeL"].fmeasure)


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n of x, tied values sharing the mean of their ranks."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2.0  # mean of ranks start+1..end
            start = end
    return ranks


def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
        raise ValueError(f"need two equally long lists of at least 2 scores, got shapes "
                         f"{x.shape} and {y.shape}")
    return x, y


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (nan if one side is constant)."""
    rx, ry = (average_ranks(v) for v in _check_pair(x, y))
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx ** 2).sum() * (ry ** 2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def kendall_tau(x: Sequence[float], y: Sequence[float], chunk: int = 512) -> float:
    """Kendall's tau-b (module doc); O(n^2) pairs, in chunks of rows (fine to ~10k items)."""
    x, y = _check_pair(x, y)
    n = len(x)
    s = tied_x = tied_y = 0.0
    for start in range(0, n, chunk):  # rows i, all j > i
        i = np.arange(start, min(start + chunk, n))[:, None]
        upper = np.arange(n)[None, :] > i
        dx, dy = np.sign(x[None, :] - x[i]), np.sign(y[None, :] - y[i])
        s += float((dx * dy)[upper].sum())              # C - D
        tied_x += float(((dx == 0) & upper).sum())
        tied_y += float(((dy == 0) & upper).sum())
    n0 = n * (n - 1) / 2
    denom = np.sqrt((n0 - tied_x) * (n0 - tied_y))
    return s / denom if denom > 0 else float("nan")
