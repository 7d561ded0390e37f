"""Group Relative Policy Optimization (Shao et al. 2024, DeepSeekMath), Lab 10 "GRPO, RLOO
and best-of-n".

GRPO drops PPO's critic: for each prompt it samples a GROUP of G responses and uses the
group's own reward statistics as the baseline. Every token of a response gets the same
advantage; the loss is PPO's clipped surrogate per token, plus beta times the k3
estimate of KL(pi || pi_ref) per token (in the loss, not in the reward as in PPO).

Layout: rewards are (B,) with B = n_prompts * G, the G samples of a prompt next to each
other (trl's order); token tensors are (B, T) over response tokens, `mask` 1 on real ones.
"""
from __future__ import annotations

import torch

from ..ppo.kl import kl_estimate

SCALE_REWARDS = ("group", "batch", "none")
GRPO_LOSS_TYPES = ("dapo", "grpo", "bnpo", "dr_grpo")


def group_advantages(rewards: torch.Tensor, group_size: int, scale_rewards: str = "group",
                     eps: float = 1e-4) -> torch.Tensor:
    """A_i = (r_i - mean_group(r)) / (std + eps), the same for every token of response i.

        group  std = std of the group of r_i (unbiased: divides by G - 1), trl's default
        batch  std = std of all B rewards (unbiased), the mean is still the group's
        none   A_i = r_i - mean_group(r)   (Dr. GRPO: no division, no difficulty bias)

    eps = 1e-4 as in trl 1.16. A group whose rewards are all equal gets A = 0: it
    carries no learning signal.
    """
    grouped = rewards.view(-1, group_size)
    centred = (grouped - grouped.mean(dim=1, keepdim=True)).view(-1)
    if scale_rewards == "none":
        return centred
    if scale_rewards == "group":
        std = grouped.std(dim=1, keepdim=True).expand_as(grouped).reshape(-1)
    elif scale_rewards == "batch":
        std = rewards.std().expand_as(rewards)
    else:
        raise ValueError(f"unknown scale_rewards {scale_rewards!r}; choose one of {SCALE_REWARDS}")
    return centred / (std + eps)


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
              mask: torch.Tensor, ref_logp: torch.Tensor | None = None, beta: float = 0.0,
              epsilon: float = 0.2, epsilon_high: float | None = None,
              loss_type: str = "dapo", n_tokens: float | None = None,
              max_completion_length: int | None = None, kl_ratio_correction: bool = True
              ) -> tuple[torch.Tensor, dict]:
    """GRPO's loss: the clipped surrogate per token plus beta * k3 KL, then aggregated.

        ratio_t = exp(logp_t - old_logp_t)
        l_t     = -min(ratio_t * A, clip(ratio_t, 1 - eps_low, 1 + eps_high) * A)
                  + beta * ratio_t * (exp(ref_t - logp_t) - (ref_t - logp_t) - 1)   (k3 KL)

    The tokens were sampled from pi_old, not pi: the factor ratio_t (kept in the graph)
    makes the KL term's gradient the unbiased gradient of KL(pi || pi_ref) (DeepSeek-V3.2).
    trl 1.16 applies it by default (`use_bias_correction_kl=True`); it changes the
    gradient even on-policy, where ratio_t = 1. `kl_ratio_correction=False`: plain k3.

    Aggregation over the masked tokens (`loss_type`):

        dapo     sum_{i,t} l_t / N, N = tokens in the whole generation batch (`n_tokens`,
                 default: this batch's) -- trl 1.16's default
        bnpo     sum_{i,t} l_t / (tokens in this batch)
        grpo     mean_i ( sum_t l_t / |y_i| )   (the paper's; favours short responses
                 when A > 0 and long ones when A < 0: the length bias)
        dr_grpo  sum_{i,t} l_t / (B * max_completion_length)

    Stats: clipfrac (share of tokens where the clip is active) and kl (mean KL term,
    ratio-corrected when the loss is, as trl logs it).
    """
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(1)
    ratio = torch.exp(logp - old_logp)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high) * advantages
    per_token = -torch.min(unclipped, clipped)
    kl = kl_estimate(logp, ref_logp, "k3") if ref_logp is not None else None
    if kl is not None and kl_ratio_correction:
        kl = kl * ratio
    if beta != 0.0:
        per_token = per_token + beta * kl
    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo" or (loss_type == "dapo" and n_tokens is None):
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dapo":
        loss = (per_token * mask).sum() / max(float(n_tokens), 1.0)
    elif loss_type == "dr_grpo":
        loss = (per_token * mask).sum() / (per_token.size(0) * max_completion_length)
    else:
        raise ValueError(f"unknown GRPO loss {loss_type!r}; choose one of {GRPO_LOSS_TYPES}")
    with torch.no_grad():
        n = mask.sum().clamp(min=1.0)
        is_clipped = (((ratio < 1 - epsilon) & (advantages < 0))
                      | ((ratio > 1 + epsilon_high) & (advantages > 0)))
        stats = {"clipfrac": ((is_clipped.float() * mask).sum() / n).item()}
        if kl is not None:
            stats["kl"] = ((kl * mask).sum() / n).item()
    return loss, stats
