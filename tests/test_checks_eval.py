"""The lab 12 checker (moss_lab.checks_eval): correct Wilson intervals pass (written
independently: a loop over plain floats, the quadratic-root form, numpy), plausible wrong
answers fail (the normal interval, a hard-coded z, a missing z^2/(4n^2) term, the bounds
swapped, the variance of the counts instead of the proportion), a stub reports 'not
implemented', nothing a learner writes makes the checker raise; the reference is checked
against the textbook values and against the exact coverage of a binomial.
"""
import math

import numpy as np
import torch

from moss_lab import checks_eval as ce


def verdicts(out: str) -> tuple[int, int, int]:
    return out.count("✅"), out.count("❌"), out.count("Not implemented yet")


def wilson_loop(wins, n, z=1.96):
    # one evaluation at a time, with math on floats
    lo, hi = [], []
    for k, m in zip(wins.tolist(), n.tolist()):
        p = k / m
        c = (p + z * z / (2 * m)) / (1 + z * z / m)
        h = z / (1 + z * z / m) * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m))
        lo.append(c - h)
        hi.append(c + h)
    return torch.tensor(lo, dtype=torch.float64), torch.tensor(hi, dtype=torch.float64)


def wilson_roots(wins, n, z=1.96):
    # the interval is the set of q with (p - q)^2 <= z^2 q (1 - q) / n: the roots of
    # (1 + z^2/n) q^2 - (2p + z^2/n) q + p^2 = 0
    p = wins / n
    a, b, c = 1 + z**2 / n, -(2 * p + z**2 / n), p**2
    disc = torch.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def wilson_numpy(wins, n, z=1.96):
    k, m = wins.numpy(), n.numpy()
    centre = (k + z**2 / 2) / (m + z**2)
    half = z * np.sqrt(m) / (m + z**2) * np.sqrt(k * (m - k) / m**2 + z**2 / (4 * m))
    return torch.from_numpy(centre - half), torch.from_numpy(centre + half)


def test_wilson_checker_accepts_correct_answers(capsys):
    for fn in (ce.wilson_interval_reference, wilson_loop, wilson_roots, wilson_numpy):
        assert ce.check_wilson_interval(fn), fn.__name__
    assert verdicts(capsys.readouterr().out) == (4, 0, 0)


def test_wilson_checker_rejects_wrong_answers(capsys):
    def normal(wins, n, z=1.96):
        p = wins / n
        h = z * torch.sqrt(p * (1 - p) / n)
        return p - h, p + h

    def fixed_z(wins, n, z=1.96):
        return ce.wilson_interval_reference(wins, n, 1.96)

    def no_quarter_term(wins, n, z=1.96):
        p = wins / n
        s = 1 + z**2 / n
        c = (p + z**2 / (2 * n)) / s
        h = z / s * torch.sqrt(p * (1 - p) / n)
        return c - h, c + h

    def swapped(wins, n, z=1.96):
        lo, hi = ce.wilson_interval_reference(wins, n, z)
        return hi, lo

    def centre_not_shrunk(wins, n, z=1.96):
        p = wins / n
        s = 1 + z**2 / n
        h = z / s * torch.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
        return p - h, p + h

    def one_sided_z(wins, n, z=1.96):
        return ce.wilson_interval_reference(wins, n, z / 2)

    wrong = [normal, fixed_z, no_quarter_term, swapped, centre_not_shrunk, one_sided_z]
    for fn in wrong:
        assert not ce.check_wilson_interval(fn), fn.__name__
    assert verdicts(capsys.readouterr().out) == (0, len(wrong), 0)


def test_wilson_checker_stub_and_crashes_never_raise(capsys):
    def stub(wins, n, z=1.96):
        raise NotImplementedError

    def crashes(wins, n, z=1.96):
        raise IndexError("oops")

    def returns_none(wins, n, z=1.96):
        pass

    assert not ce.check_wilson_interval(stub)
    assert not ce.check_wilson_interval(crashes)
    assert not ce.check_wilson_interval(returns_none)
    assert verdicts(capsys.readouterr().out) == (0, 2, 1)


def test_wilson_reference_textbook_values_and_coverage():
    # Agresti & Coull (1998)-style check values, computed by hand from the formula:
    # 0 of 10 -> [0, 0.2775]; 5 of 10 -> [0.2366, 0.7634]
    lo, hi = ce.wilson_interval_reference(torch.tensor([0.0, 5.0], dtype=torch.float64),
                                          torch.tensor([10.0, 10.0], dtype=torch.float64))
    assert torch.allclose(lo, torch.tensor([0.0, 0.2366], dtype=torch.float64), atol=1e-4)
    assert torch.allclose(hi, torch.tensor([0.2775, 0.7634], dtype=torch.float64), atol=1e-4)
    # exact coverage of the 95% interval for n = 100 at a few true rates: close to 0.95
    n = 100
    k = torch.arange(n + 1, dtype=torch.float64)
    lo, hi = ce.wilson_interval_reference(k, torch.full_like(k, n))
    for q in (0.1, 0.3, 0.5, 0.55):
        pmf = torch.tensor([math.comb(n, i) * q**i * (1 - q) ** (n - i) for i in range(n + 1)],
                           dtype=torch.float64)
        coverage = float(pmf[(lo <= q) & (q <= hi)].sum())
        assert 0.92 < coverage < 0.98, (q, coverage)
