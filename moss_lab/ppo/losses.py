"""The PPO losses, token by token (Lab 04 for the policy, Lab 05 for the value).

Tensors are (batch, T) over response tokens; `mask` is 1 on real tokens. Every mean is a
token-level mean over the masked entries of the minibatch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """sum(x * mask) / sum(mask)."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip: float = 0.2) -> tuple[torch.Tensor, dict]:
    """The clipped surrogate objective, as a loss to minimise (Schulman et al. 2017).

        ratio = exp(logp - old_logp) = pi(a|s) / pi_old(a|s)
        loss  = -mean( min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A) )

    Stats: clipfrac (share of tokens where |ratio - 1| > eps) and approx_kl, the k3
    estimate of KL(pi_old || pi):  mean((ratio - 1) - log ratio).
    """
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean(((ratio - 1.0).abs() > clip).float(), mask).item(),
            "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask).item(),
            "ratio": masked_mean(ratio, mask).item(),
        }
    return loss, stats


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor,
               mask: torch.Tensor, clip: float | None = 0.2) -> tuple[torch.Tensor, dict]:
    """Squared error of the critic, optionally clipped around the rollout values (PPO-max).

        V_clip = old_V + clip(V - old_V, -c, c)
        loss   = 0.5 * mean( max((V - R)^2, (V_clip - R)^2) )       (clip=None: no V_clip)

    Clipping stops one minibatch from moving the value far from what generated the
    advantages. Stats: clipfrac (share of tokens where the clipped error is the larger).
    """
    err = (values - returns) ** 2
    if clip is None:
        return 0.5 * masked_mean(err, mask), {"clipfrac": 0.0}
    v_clipped = old_values + torch.clamp(values - old_values, -clip, clip)
    err_clipped = (v_clipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(err, err_clipped), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((err_clipped > err).float(), mask).item()}
    return loss, stats


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of softmax(logits) over the last axis: H = logsumexp(z) - sum(p * z)."""
    p = F.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (p * logits).sum(dim=-1)


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] for each position: (B, T, V), (B, T) -> (B, T)."""
    return torch.log_softmax(logits.float(), dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def ptx_loss(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on pretraining text (PPO-ptx, InstructGPT; MOSS's "pretrain
    loss"): keeps the policy close to the base model's language, against alignment tax."""
    logp = token_logprobs(logits[:, :-1], input_ids[:, 1:])
    return -masked_mean(logp, mask[:, 1:].float())
