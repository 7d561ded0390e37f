"""MOSS-RLHF Part II: preference strength from an ensemble, and a contrastive term (Lab 11).

"Secrets of RLHF in Large Language Models Part II: Reward Modeling" (Wang et al., 2024)
trains M reward models on the same preference data with different seeds and reads, for
every pair i, the reward gap each member m gives it:

    d_mi = r_m(x_i, y_c,i) - r_m(x_i, y_r,i)
    s_i  = mean_m d_mi        preference strength: how clearly, and which way, the pair is ordered
    u_i  = std_m d_mi         its uncertainty: how much the members disagree

s_i < 0: the ensemble orders the pair against its label, which is probably wrong (Part II
flips it); s_i near 0: an ambiguous pair (label smoothing); a large s_i: a clear pair (an
adaptive margin proportional to s_i). `train_reward_model(..., strength=s)` uses such a
strength for flip_fraction, smooth_fraction and adaptive_margin instead of the model's
own gap.

    train_ensemble     M reward models on the same pairs, seeds config.seed, +1, +2, ...
    ensemble_gaps      d, shape (M, n)
    strength_stats     (s, u) from d: the two formulas above (Lab 11's first exercise)
    ensemble_strength  (s, u) of pairs under trained reward models
    suspect_pairs      s_i < -z u_i: the ensemble contradicts the label, with confidence
    info_nce           SimCSE's InfoNCE between two views (Lab 11's second exercise)
    contrastive_loss   the term RewardConfig.contrastive_coef adds to the reward loss
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .preferences import Preference

CONTRASTIVE_DROPOUT = 0.1  # SimCSE's dropout rate: each view drops 10% of the features


# ---------------------------------------------------------------------------------------
# Preference strength from an ensemble
# ---------------------------------------------------------------------------------------
def train_ensemble(pairs: list[Preference], config=None, n_models: int = 5,
                   eval_pairs: list[Preference] | None = None) -> list[tuple]:
    """M = n_models reward models trained on all of `pairs`, seeds config.seed + m.

    Returns train_reward_model's (model, tokenizer, final) per member; the members differ
    only by the seed (head initialisation and batch order), as in Part II. `eval_pairs`:
    measured after training (final['acc_gold'] ...); None: no evaluation.
    """
    from .reward import RewardConfig, train_reward_model

    if n_models < 2:
        raise ValueError(f"an ensemble needs at least 2 reward models to measure a spread, "
                         f"got n_models={n_models}")
    config = config or RewardConfig()
    return [train_reward_model(pairs, dataclasses.replace(config, seed=config.seed + m),
                               eval_pairs=eval_pairs if eval_pairs is not None else [])
            for m in range(n_models)]


def ensemble_gaps(members, pairs: list[Preference]) -> torch.Tensor:
    """d_mi = r_m(chosen_i) - r_m(rejected_i), shape (M, n); members are (model, tokenizer, ...)."""
    from .reward import pair_scores

    gaps = []
    for model, tokenizer, *_ in members:
        r_c, r_r = pair_scores(model, tokenizer, pairs)
        gaps.append(r_c - r_r)
    return torch.stack(gaps)


def strength_stats(gaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, u) per pair from gaps d of shape (M, n):

        s_i = (1/M) sum_m d_mi,   u_i = sqrt( sum_m (d_mi - s_i)^2 / (M - 1) )

    (the sample std, torch's default, as an ensemble of M is a sample of possible models).
    """
    if gaps.dim() != 2 or gaps.shape[0] < 2:
        raise ValueError(f"gaps must have shape (M, n) with M >= 2 reward models, "
                         f"got {tuple(gaps.shape)}")
    return gaps.mean(dim=0), gaps.std(dim=0)


def ensemble_strength(members, pairs: list[Preference]) -> tuple[torch.Tensor, torch.Tensor]:
    """(s, u): preference strength and its uncertainty of each pair under the members."""
    return strength_stats(ensemble_gaps(members, pairs))


def suspect_pairs(strength: torch.Tensor, spread: torch.Tensor, z: float = 1.0) -> torch.Tensor:
    """Probably mislabelled: s_i < -z * u_i, the ensemble orders the pair against its label
    by more than z of its own standard deviations (z = 0: every pair with s_i < 0).
    A bool tensor of shape (n,)."""
    return strength < -z * spread


# ---------------------------------------------------------------------------------------
# The contrastive term (Part II, section 4: SimCSE on the reward model's representations)
# ---------------------------------------------------------------------------------------
def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE of two views (n, k), SimCSE's loss; row i of z2 is the positive of row i
    of z1, the other rows its in-batch negatives:

        L = -(1/n) sum_i log( exp(cos(z1_i, z2_i) / t) / sum_j exp(cos(z1_i, z2_j) / t) )
    """
    sim = F.normalize(z1, dim=-1) @ F.normalize(z2, dim=-1).T
    return F.cross_entropy(sim / temperature, torch.arange(len(z1), device=z1.device))


def contrastive_loss(h_chosen: torch.Tensor, h_rejected: torch.Tensor, temperature: float = 0.1,
                     dropout: float = CONTRASTIVE_DROPOUT) -> torch.Tensor:
    """InfoNCE on two dropout views of each pair's representation difference:

        v_i = h_c,i - h_r,i   (the last hidden states the reward head reads, (n, k))
        L   = info_nce(dropout(v), dropout'(v), t)   two independent dropout masks

    As in Part II the representation of a comparison is the difference of the two
    responses' features; as in SimCSE dropout makes the two views. The toy models have no
    dropout inside, so it is applied to the features themselves: no second forward pass.
    """
    v = h_chosen - h_rejected
    return info_nce(F.dropout(v, dropout, training=True), F.dropout(v, dropout, training=True),
                    temperature)
