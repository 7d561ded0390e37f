"""REINFORCE Leave-One-Out (Kool et al. 2019; Ahmadian et al. 2024), Lab 10 "GRPO, RLOO
and best-of-n".

Like GRPO, RLOO samples k responses per prompt and needs no critic; the baseline of
sample i is the mean reward of the OTHER k - 1 samples, which keeps the policy gradient
unbiased (b_i does not depend on y_i). The response is one action: the KL penalty is
summed over its tokens into the reward, and the ratio is that of whole sequences.

Layout: (B,) with B = n_prompts * k, the k samples of a prompt next to each other.
"""
from __future__ import annotations

import torch


def kl_penalised_rewards(scores: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor,
                         mask: torch.Tensor, beta: float) -> torch.Tensor:
    """r_i = score_i - beta * sum_t (log pi(y_t) - log pi_ref(y_t))      (k1, summed)

    `logp` are the log-probs of the sampling policy (per token, (B, T)). trl 1.16's
    RLOOTrainer uses this first-order estimate, which can be negative on a sequence.
    """
    return scores - beta * ((logp - ref_logp) * mask).sum(-1)


def leave_one_out_advantages(rewards: torch.Tensor, k: int, normalize: bool = False,
                             eps: float = 1e-4) -> torch.Tensor:
    """A_i = r_i - b_i,  b_i = (sum_j r_j - r_i) / (k - 1)   over the k samples of a prompt.

    Equivalently A_i = k / (k - 1) * (r_i - mean(r)). With `normalize`, the advantages
    of the whole batch are then standardised: (A - mean(A)) / (std(A) + eps), the std
    unbiased, eps = 1e-4 (trl 1.16's `normalize_advantages`, off by default).
    """
    grouped = rewards.view(-1, k)
    baselines = (grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)
    advantages = (grouped - baselines).view(-1)
    if normalize:
        advantages = (advantages - advantages.mean()) / (advantages.std() + eps)
    return advantages


def rloo_loss(seq_logp: torch.Tensor, old_seq_logp: torch.Tensor, advantages: torch.Tensor,
              epsilon: float = 0.2, epsilon_high: float | None = None
              ) -> tuple[torch.Tensor, dict]:
    """The clipped surrogate with one ratio per SEQUENCE, as trl 1.16's RLOOTrainer computes it:

        ratio_i = exp(log pi(y_i) - log pi_old(y_i))        (log-probs summed over tokens)
        loss    = -mean_i min(ratio_i * A_i, clip(ratio_i, 1 - eps_low, 1 + eps_high) * A_i)

    With one update per batch (ratio = 1) its gradient is plain REINFORCE with the
    leave-one-out baseline: -mean_i A_i * grad log pi(y_i).
    """
    epsilon_high = epsilon if epsilon_high is None else epsilon_high
    ratio = torch.exp(seq_logp - old_seq_logp)
    clipped = torch.clamp(ratio, 1 - epsilon, 1 + epsilon_high)
    loss = -torch.min(ratio * advantages, clipped * advantages).mean()
    with torch.no_grad():
        is_clipped = (((ratio < 1 - epsilon) & (advantages < 0))
                      | ((ratio > 1 + epsilon_high) & (advantages > 0)))
        stats = {"clipfrac": is_clipped.float().mean().item()}
    return loss, stats
