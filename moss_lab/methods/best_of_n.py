"""Best-of-n sampling (rejection sampling against a reward model), Lab 10 "GRPO, RLOO and
best-of-n".

Sample n responses from the base policy, score them with the reward model, keep the
highest. No training at all, yet it is a strong baseline, and its KL to the base policy
has a closed form that tells how far "n" moves the policy:

    KL(pi_bon || pi) = log n - (n - 1) / n        (Stiennon et al. 2020, appendix)

for a reward that is continuous under pi (no two responses share a reward, no
response carries positive mass). Beirami et al. (2024) show it is an UPPER bound in
general: responses with positive probability (atoms, ties) give a smaller KL, and the
toy world, whose base model repeats a few responses often, is such a case.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..sampling import generate


@dataclass
class BestOfN:
    prompts: list[str]
    responses: list[str]            # the kept (highest-scoring) response of each prompt
    scores: torch.Tensor            # (P,) its reward
    all_responses: list[list[str]]  # the n candidates of each prompt
    all_scores: torch.Tensor        # (P, n) their rewards
    best_index: torch.Tensor        # (P,) which candidate was kept


def best_of_n(policy, tokenizer, prompts: list[str], n: int,
              reward_fn: Callable[[list[str], list[str]], torch.Tensor],
              max_new_tokens: int = 40, temperature: float = 1.0, top_p: float = 1.0,
              seed: int | None = None) -> BestOfN:
    """For each prompt x: y_1..y_n ~ pi(.|x) independently, keep y* = argmax_j r(x, y_j).

    `reward_fn(prompts, responses) -> Tensor (m,)` scores response texts (e.g.
    ppo.setup.from_reward_model). All P * n samples are drawn in one batch with
    sampling.generate; ties keep the first candidate.
    """
    repeated = [p for p in prompts for _ in range(n)]
    samples = generate(policy, tokenizer, repeated, max_new_tokens=max_new_tokens,
                       temperature=temperature, top_p=top_p, seed=seed)
    scores = torch.as_tensor(reward_fn(repeated, samples.responses), dtype=torch.float32)
    all_scores = scores.view(len(prompts), n)
    best = all_scores.argmax(dim=1)
    all_responses = [samples.responses[i * n:(i + 1) * n] for i in range(len(prompts))]
    return BestOfN(prompts=list(prompts),
                   responses=[cands[j] for cands, j in zip(all_responses, best.tolist())],
                   scores=all_scores.gather(1, best[:, None]).squeeze(1),
                   all_responses=all_responses, all_scores=all_scores, best_index=best)


def analytic_kl(n: int) -> float:
    """KL(pi_bon || pi) = log n - (n - 1) / n: exact for continuous rewards, else an upper bound."""
    return math.log(n) - (n - 1) / n


def best_of_n_distribution(probs: torch.Tensor, rewards: torch.Tensor, n: int
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact best-of-n distribution of a categorical base distribution, over reward levels.

    With F(r) = P_pi(R <= r) and F(r-) = P_pi(R < r), the best of n draws has reward r with

        P_bon(R = r) = F(r)^n - F(r-)^n

    (all n draws at most r, minus all strictly below r). Within a reward level the kept
    outcome is distributed like pi (ties broken at random), so KL over levels equals KL
    over outcomes. Returns (base mass per level, best-of-n mass per level), levels sorted
    by reward.
    """
    levels, level_of = torch.unique(rewards, sorted=True, return_inverse=True)
    base = torch.zeros(len(levels), dtype=torch.float64).index_add_(0, level_of, probs.double())
    cdf = base.cumsum(0)
    below = cdf - base
    return base, cdf ** n - below ** n


def exact_best_of_n_kl(probs: torch.Tensor, rewards: torch.Tensor, n: int) -> float:
    """KL(pi_bon || pi) = sum_r P_bon(r) log(P_bon(r) / pi(r)), exactly, for a categorical pi.

    Equals log n - (n - 1) / n in the limit of many outcomes each of vanishing mass, and
    is smaller whenever some reward level carries mass.
    """
    base, bon = best_of_n_distribution(probs, rewards, n)
    keep = bon > 0
    return float((bon[keep] * (bon[keep].log() - base[keep].log())).sum())


def plug_in_kl(base_rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Measured KL of best-of-n for each prompt: the exact KL of best-of-n over the EMPIRICAL
    base distribution of m samples (each with mass 1/m; equal rewards form one level).

    `base_rewards` (P, m): rewards of m responses sampled from pi for each prompt
    (independent of the ones best-of-n kept). A plug-in estimate, never above
    analytic_kl(n): m DISTINCT rewards give the analytic value up to O(1/m^2) (n = 4:
    0.0075 nats short at m = 10, 7.5e-5 at m = 100) whatever the reward distribution,
    so what it measures is how much the repeated rewards (responses the base model
    samples often, or reward ties) lower the KL. It converges to the true KL as m grows;
    responses rarer than 1/m look continuous to it.
    """
    m = base_rewards.shape[1]
    probs = torch.full((m,), 1.0 / m, dtype=torch.float64)
    return torch.tensor([exact_best_of_n_kl(probs, row, n) for row in base_rewards])


def measured_kl(policy, tokenizer, prompts: list[str], n: int,
                reward_fn: Callable[[list[str], list[str]], torch.Tensor], m: int = 256,
                max_new_tokens: int = 40, temperature: float = 1.0, seed: int | None = None
                ) -> torch.Tensor:
    """Sample m base responses per prompt, score them and return plug_in_kl per prompt (P,)."""
    repeated = [p for p in prompts for _ in range(m)]
    samples = generate(policy, tokenizer, repeated, max_new_tokens=max_new_tokens,
                       temperature=temperature, seed=seed)
    scores = torch.as_tensor(reward_fn(repeated, samples.responses), dtype=torch.float64)
    return plug_in_kl(scores.view(len(prompts), m), n)
