"""From a reward-model score per response to a reward per token (Lab 06, PPO-max).

    r_t = -beta * KL_t                       on every response token t   (token-level KL)
    r_T = r_T + score                        on the last response token T

`score` is the reward model's output after the PPO-max score treatment (missing-<eos>
penalty, running normalisation or scaling, clipping) done by the trainer.
"""
from __future__ import annotations

import torch

from .kl import kl_estimate


def shape_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
                  mask: torch.Tensor, kl_coef: float, kl_estimator: str = "k1"
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards (B, T) and the per-token KL estimate (B, T) they were built from.

    scores (B,): one scalar per response; mask (B, T): 1 on response tokens (a prefix of
    each row). The score lands on each row's last masked token.
    """
    kl = kl_estimate(logp, ref_logp, kl_estimator) * mask
    rewards = -kl_coef * kl
    last = (mask.sum(dim=1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards * mask, kl


class RunningMoments:
    """Running mean and standard deviation of a stream of scores (Chan et al.'s parallel
    update, as in MOSS-RLHF and stable-baselines3), for reward normalisation."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-24

    @property
    def std(self) -> float:
        return self.var ** 0.5

    def update(self, xs: torch.Tensor) -> None:
        xs = xs.double().flatten()
        n = xs.numel()
        batch_mean, batch_var = xs.mean().item(), xs.var(unbiased=False).item()
        delta, total = batch_mean - self.mean, self.count + n
        m2 = self.var * self.count + batch_var * n + delta ** 2 * self.count * n / total
        self.mean += delta * n / total
        self.var = m2 / total
        self.count = total
