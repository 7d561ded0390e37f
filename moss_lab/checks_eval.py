"""Checkers for the exercises of lab 12 (evaluating aligned models).

The same engine and verdicts as moss_lab.checks (✅ / ❌ / ⚠️ Not implemented yet; a
checker never raises and returns True only when every trial matches).

    check_wilson_interval   the Wilson score interval of a win rate

The Wilson interval of k wins in n judgements (z = 1.96 for 95%), with p = k / n:

    centre = (p + z^2 / (2n)) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    [lo, hi] = [centre - half, centre + half]

Unlike the normal ("Wald") interval p +- z sqrt(p (1 - p) / n), it never has width 0
at k = 0 or k = n and never leaves [0, 1].
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .checks import _pick, check_function, use_if_passed  # noqa: F401 (use_if_passed: labs)


# ---------------------------------------------------------------------------------------
# The Wilson score interval of a win rate
# ---------------------------------------------------------------------------------------
def wilson_interval_reference(wins, n, z=1.96):
    """(lo, hi) of the Wilson score interval of wins / n, elementwise (module doc)."""
    p = wins / n
    shrink = 1 + z ** 2 / n
    centre = (p + z ** 2 / (2 * n)) / shrink
    half = z / shrink * torch.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2))
    return centre - half, centre + half


def _win_counts(gen: torch.Generator) -> dict:
    """k judgements counts n (1 to 2000) and wins 0..n, in float64; every trial holds a
    0-win and an all-win entry (where a normal interval collapses to a point), and z is
    drawn so that a hard-coded 1.96 or 2 shows."""
    k = int(torch.randint(2, 9, (1,), generator=gen))
    n = torch.randint(1, 2001, (k,), generator=gen).double()
    n[0] = _pick(gen, (1.0, 5.0, 25.0))
    wins = torch.floor(torch.rand(k, generator=gen, dtype=torch.float64) * (n + 1)).clamp(max=n)
    wins[0], wins[1] = 0.0, n[1]
    return {"wins": wins, "n": n, "z": _pick(gen, (1.0, 1.645, 1.96, 2.576))}


def check_wilson_interval(fn: Callable) -> bool:
    """Lab 12 exercise: fn(wins (k,), n (k,), z) -> (lo (k,), hi (k,)), the Wilson interval."""
    return check_function(
        fn, wilson_interval_reference, _win_counts, atol=1e-7, rtol=1e-6,
        hint="with p = wins / n: centre = (p + z**2 / (2 * n)) / (1 + z**2 / n) and "
             "half = z / (1 + z**2 / n) * sqrt(p * (1 - p) / n + z**2 / (4 * n**2)); return "
             "(centre - half, centre + half), lower bound first. Use the z you are given, and "
             "torch.sqrt so that it works on tensors.")
