"""Returns, advantages, whitening and the critic's explained variance (Labs 04 and 05).

Every tensor is shaped (batch, T): one row per response, one column per response token.
`mask` marks the real tokens (1) and the padding after <eos> (0); padded steps carry no
reward and do not bootstrap, so a row behaves as if the episode ended at its last token.
"""
from __future__ import annotations

import torch


def discounted_returns(rewards: torch.Tensor, gamma: float, mask: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Reward-to-go  R_t = sum_{k >= t} gamma^(k - t) r_k  (the seed's R = sum_t gamma^t r_t).

    Computed backwards:  R_t = r_t + gamma * R_{t+1}, with R_T = 0.  Lab 04.
    """
    if mask is not None:
        rewards = rewards * mask
    returns = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        running = rewards[:, t] + gamma * running
        returns[:, t] = running
    return returns


def gae(rewards: torch.Tensor, values: torch.Tensor, gamma: float, lam: float,
        mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016); returns (advantages, returns).

        delta_t = r_t + gamma * V_{t+1} - V_t            (TD error; V after the last token is 0)
        A_t     = sum_{k >= t} (gamma * lam)^(k - t) delta_k  =  delta_t + gamma * lam * A_{t+1}
        returns = A_t + V_t                              (the critic's regression target)

    lam = 1 gives the Monte-Carlo return minus V; lam = 0 gives the one-step TD error. Lab 05.
    """
    if mask is None:
        mask = torch.ones_like(rewards)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[:, 0])
    T = rewards.shape[1]
    for t in reversed(range(T)):
        next_value = values[:, t + 1] if t + 1 < T else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = (delta + gamma * lam * last) * mask[:, t]
        advantages[:, t] = last
    return advantages, advantages + values


def whiten(x: torch.Tensor, mask: torch.Tensor | None = None, shift_mean: bool = True,
           eps: float = 1e-8, moments=None) -> torch.Tensor:
    """(x - mean) / std over the masked entries; with shift_mean=False the mean is kept.

    Advantage normalisation (PPO-max): it keeps the policy step size independent of the
    reward scale. Padded entries are returned as 0. `moments(x, mask) -> (mean, var)`
    defaults to masked_moments; the trainer passes moss_lab.distributed.global_moments,
    so that processes sharing a batch whiten by the whole batch's moments.
    """
    if mask is None:
        mask = torch.ones_like(x)
    mean, var = (moments or masked_moments)(x, mask)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor
                       ) -> torch.Tensor:
    """How much of the returns the critic predicts, over the real tokens (as CleanRL logs it):

        EV = 1 - Var[returns - values] / Var[returns]

    1: perfect values; 0: no better than predicting the mean return; < 0: worse than that.
    Variances are population variances over the masked entries; NaN when Var[returns] = 0.
    """
    _, var_returns = masked_moments(returns, mask)
    _, var_error = masked_moments(returns - values, mask)
    if var_returns == 0:
        return torch.full_like(var_returns, float("nan"))
    return 1 - var_error / var_returns


def masked_moments(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, population variance) of the entries of x where mask is 1."""
    n = mask.sum()
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / n
    return mean, var
