"""Checkers for the exercises of lab 11 (reward modeling under noisy preferences).

The same engine and verdicts as moss_lab.checks (✅ / ❌ / ⚠️ Not implemented yet; a
checker never raises and returns True only when every trial matches); the references are
moss_lab.preference_strength's functions, imported inside each reference so that importing
this module puts no solution in a lab's scope.

    check_preference_strength   the ensemble's strength and spread from members' rewards
    check_info_nce              SimCSE's InfoNCE loss between two views
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .checks import _pick, check_function, use_if_passed  # noqa: F401 (use_if_passed: labs)


# ---------------------------------------------------------------------------------------
# Preference strength: mean and spread of the reward gap over an ensemble
# ---------------------------------------------------------------------------------------
def preference_strength_reference(r_chosen, r_rejected):
    """(s, u): mean and sample std over the M members (dim 0) of r_c - r_r, each (n,)."""
    from .preference_strength import strength_stats

    return strength_stats(r_chosen - r_rejected)


def _ensemble_rewards(gen: torch.Generator):
    """Rewards (M, n) of n pairs under M members: a shared per-pair gap plus each member's
    own offset and noise. M = n in some trials, so that an answer averaging over the pairs
    (dim 1) has the right shape and must be caught by its values."""
    M = _pick(gen, (2, 3, 5, 8))
    n = M if torch.rand(1, generator=gen) < 0.3 else int(torch.randint(1, 17, (1,), generator=gen))
    scale = _pick(gen, (0.3, 1.0, 4.0))
    shared = torch.randn(1, n, generator=gen) * scale
    r_rejected = torch.randn(M, n, generator=gen) * scale + torch.randn(M, 1, generator=gen)
    r_chosen = r_rejected + shared + torch.randn(M, n, generator=gen) * scale * 0.5
    return r_chosen, r_rejected


def check_preference_strength(fn: Callable) -> bool:
    """Lab 11 exercise: fn(r_chosen (M, n), r_rejected (M, n)) -> (strength (n,), spread (n,))."""
    return check_function(
        fn, preference_strength_reference, _ensemble_rewards,
        hint="the gap of member m on pair i is d[m, i] = r_chosen[m, i] - r_rejected[m, i]; "
             "strength = its mean over the members (dim 0), spread = its sample standard "
             "deviation over the members (torch's default .std(dim=0), dividing by M - 1). "
             "Return the two as a tuple, each of shape (n,).")


# ---------------------------------------------------------------------------------------
# The contrastive term: InfoNCE between two views
# ---------------------------------------------------------------------------------------
def info_nce_reference(z1, z2, temperature):
    """-(1/n) sum_i log softmax_j(cos(z1_i, z2_j) / t) at j = i."""
    from .preference_strength import info_nce

    return info_nce(z1, z2, temperature)


def _views(gen: torch.Generator):
    """Two views (n, k) of n items, z2 a noisy copy of z1 at a random scale (cosine does
    not care about the scale; a dot product does), and a temperature. In float64: a row
    of norm 0.01 at t = 0.05 scales float32 rounding of the gradient by ~2000."""
    n = int(torch.randint(1, 13, (1,), generator=gen))
    k = _pick(gen, (2, 4, 8, 16))
    z1 = torch.randn(n, k, generator=gen, dtype=torch.float64) * _pick(gen, (0.1, 1.0, 5.0))
    z2 = z1 * _pick(gen, (0.5, 1.0, 3.0)) \
        + torch.randn(n, k, generator=gen, dtype=torch.float64) * _pick(gen, (0.1, 1.0))
    return z1, z2, _pick(gen, (0.05, 0.1, 0.5, 1.0))


def check_info_nce(fn: Callable) -> bool:
    """Lab 11 exercise: fn(z1 (n, k), z2 (n, k), temperature) -> the InfoNCE loss (a scalar)."""
    return check_function(
        fn, info_nce_reference, _views, compare_grads=True,
        hint="normalise the rows of both views (F.normalize(z, dim=-1)); sim = z1 @ z2.T is "
             "then the (n, n) matrix of cosines; divide by the temperature; row i's positive "
             "is column i, every column (the positive too) is in the denominator: "
             "F.cross_entropy(sim / t, torch.arange(n)), the mean over the rows.")
