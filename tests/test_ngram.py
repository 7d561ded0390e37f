"""moss_lab.ngram: BLEU and ROUGE-L as the packages document them, and the rank
correlations against a brute-force loop over all pairs and textbook values."""
import itertools
import math

import numpy as np
import pytest

from moss_lab import ngram


def test_bleu_matches_sacrebleu_documented_behaviour():
    import sacrebleu

    same = "the cat sat on the mat ."
    assert ngram.bleu(same, same) == pytest.approx(100.0)
    assert ngram.bleu("dogs love long walks .", "the moon shines at night .") < 10
    # sacrebleu's README example, one hypothesis at a time: sentence_bleu of each
    refs = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
            ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
    sys = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]
    assert sacrebleu.corpus_bleu(sys, refs).score == pytest.approx(48.53, abs=0.01)
    for i, hyp in enumerate(sys):
        assert ngram.bleu(hyp, [r[i] for r in refs]) == pytest.approx(
            sacrebleu.sentence_bleu(hyp, [r[i] for r in refs]).score)
    assert ngram.bleu(sys[0], [r[0] for r in refs]) == pytest.approx(100.0)


def test_rouge_l_is_the_lcs_f_measure():
    # rouge-score's README example: "The quick brown fox jumps over the lazy dog" vs
    # "The quick brown dog jumps on the log." -> ROUGE-L P 0.625, R 0.5556, F 0.5882
    f = ngram.rouge_l("The quick brown dog jumps on the log.",
                      "The quick brown fox jumps over the lazy dog")
    assert f == pytest.approx(0.5882, abs=1e-4)
    # by hand (rouge-score's tokenizer drops punctuation): the LCS of 4 and 6 words is 4
    # -> P 4/4, R 4/6, F = 2PR / (P + R) = 0.8
    p, r = 4 / 4, 4 / 6
    assert ngram.rouge_l("cats purr when happy .", "cats purr when they are happy .") == \
        pytest.approx(2 * p * r / (p + r))


def kendall_brute(x, y):
    c = d = tx = ty = 0
    for i, j in itertools.combinations(range(len(x)), 2):
        sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tx += sx == 0
        ty += sy == 0
        c += sx * sy > 0
        d += sx * sy < 0
    n0 = len(x) * (len(x) - 1) / 2
    return (c - d) / math.sqrt((n0 - tx) * (n0 - ty))


def spearman_brute(x, y):
    def ranks(v):  # rank = 1 + #smaller + (#equal - 1) / 2
        return np.array([1 + sum(w < a for w in v) + (sum(w == a for w in v) - 1) / 2 for a in v])
    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def test_rank_correlations_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    for n in (2, 5, 17, 60):
        x = rng.integers(0, 4, n).astype(float)  # many ties, like the gold score
        y = x + rng.normal(0, 1.5, n)
        y[: n // 3] = np.round(y[: n // 3])
        if len(set(x)) > 1:
            assert ngram.kendall_tau(x, y, chunk=7) == pytest.approx(kendall_brute(x, y))
            assert ngram.spearman(x, y) == pytest.approx(spearman_brute(x, y))


def test_rank_correlation_textbook_values_and_bad_input():
    assert ngram.kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert ngram.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert ngram.kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert ngram.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(0.8207826816681233)
    assert math.isnan(ngram.spearman([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="equally long"):
        ngram.kendall_tau([1, 2], [1, 2, 3])
