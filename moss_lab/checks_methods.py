"""Checkers for the exercises of labs 09 (DPO) and 10 (GRPO, RLOO and best-of-n).

The same engine and verdicts as moss_lab.checks (✅ / ❌ / ⚠️ Not implemented yet; a
checker never raises and returns True only when every trial matches); the references
are the library's functions in moss_lab.methods, imported inside each reference so that
importing this module puts no solution in a lab's scope.

    check_dpo_loss               lab 09: the DPO loss from the four sequence log-probs
    check_group_advantages       lab 10: GRPO's group-normalised advantages
    check_leave_one_out_baseline lab 10: RLOO's baseline, the mean of the other k - 1
    check_best_of_n_kl           lab 10: the analytic KL of best-of-n to the base policy
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from .checks import _pick, check_function, use_if_passed  # noqa: F401 (use_if_passed: labs)


# ---------------------------------------------------------------------------------------
# Lab 09: the DPO loss
# ---------------------------------------------------------------------------------------
def dpo_loss_reference(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                       ref_rejected_logps, beta):
    """mean over pairs of -log sigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l))):
    moss_lab.methods.dpo.dpo_loss's loss (sigmoid, no label smoothing)."""
    from .methods.dpo import dpo_loss

    return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                    ref_rejected_logps, beta=beta)[0]


def _dpo_inputs(gen: torch.Generator):
    """Sequence log-probs (sums over a response's tokens: -2 to -60 nats) of a batch of 1-16
    pairs under the policy and the reference, the policy a random distance from the
    reference; one trial in four has log-ratio gaps beyond 100 / beta, where a naive
    log(sigmoid(.)) underflows."""
    n = int(torch.randint(1, 17, (1,), generator=gen))
    ref_w = -torch.rand(n, generator=gen) * 58 - 2
    ref_l = -torch.rand(n, generator=gen) * 58 - 2
    spread = _pick(gen, (0.1, 1.0, 5.0, 500.0))
    pi_w = ref_w + torch.randn(n, generator=gen) * spread
    pi_l = ref_l + torch.randn(n, generator=gen) * spread
    beta = _pick(gen, (0.05, 0.1, 0.5, 1.0))
    return pi_w, pi_l, ref_w, ref_l, beta


def check_dpo_loss(fn: Callable) -> bool:
    """Lab 09 exercise: fn(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
    ref_rejected_logps, beta) -> the DPO loss (mean over pairs).

    Gradients are compared with respect to the policy's log-probs only: the reference's
    are constants of the loss, and an answer may detach them.
    """
    return check_function(
        fn, dpo_loss_reference, _dpo_inputs, compare_grads=True, grad_wrt=(0, 1),
        hint="the implicit reward of a response is beta * (policy logp - reference logp); "
             "the loss is the Bradley-Terry loss on them: mean of -logsigmoid(beta * "
             "((pi_w - ref_w) - (pi_l - ref_l))). Mind the sign (chosen minus rejected), "
             "the beta, and use F.logsigmoid: log(sigmoid(x)) is -inf for x below -100.")


# ---------------------------------------------------------------------------------------
# Lab 10: GRPO's group advantages, RLOO's leave-one-out baseline, the KL of best-of-n
# ---------------------------------------------------------------------------------------
def group_advantages_reference(rewards, group_size):
    """(r_i - mean of its group) / (std of its group + 1e-4), the std unbiased (G - 1):
    moss_lab.methods.grpo.group_advantages with scale_rewards="group"."""
    from .methods.grpo import group_advantages

    return group_advantages(rewards, group_size)


def _group_rewards(gen: torch.Generator):
    """(rewards (n_groups * G,), G): the G samples of a prompt next to each other. Half of
    the batches hold 0/1 rewards (a verifier's), where whole groups often agree: such a
    group's advantages must be 0, not NaN."""
    n_groups = int(torch.randint(1, 6, (1,), generator=gen))
    G = _pick(gen, (2, 3, 4, 8))
    if torch.rand(1, generator=gen) < 0.5:
        rewards = (torch.rand(n_groups * G, generator=gen) < 0.5).float()
        rewards[:G] = float(torch.rand(1, generator=gen) < 0.5)  # one group all equal
    else:
        scale = _pick(gen, (0.1, 1.0, 5.0))
        rewards = torch.randn(n_groups * G, generator=gen) * scale + torch.randn(1, generator=gen)
    return rewards, G


def check_group_advantages(fn: Callable) -> bool:
    """Lab 10 exercise: fn(rewards (B,), group_size) -> GRPO's advantages (B,)."""
    return check_function(
        fn, group_advantages_reference, _group_rewards,
        hint="view the rewards as (n_groups, group_size) (the samples of a prompt are "
             "adjacent); subtract each group's mean, divide by its std plus 1e-4. The std is "
             "the unbiased one (torch's default .std(), dividing by G - 1, as trl), and "
             "each reward is compared with its OWN group only. Return shape (B,).")


def leave_one_out_baseline_reference(rewards, k):
    """b_i = (sum of the k rewards of i's group - r_i) / (k - 1), from
    moss_lab.methods.rloo.leave_one_out_advantages (A_i = r_i - b_i)."""
    from .methods.rloo import leave_one_out_advantages

    return rewards - leave_one_out_advantages(rewards, k)


def _loo_rewards(gen: torch.Generator):
    n_groups = int(torch.randint(1, 6, (1,), generator=gen))
    k = _pick(gen, (2, 3, 4, 8))
    scale = _pick(gen, (0.1, 1.0, 5.0))
    return torch.randn(n_groups * k, generator=gen) * scale + torch.randn(1, generator=gen), k


def check_leave_one_out_baseline(fn: Callable) -> bool:
    """Lab 10 exercise: fn(rewards (B,), k) -> RLOO's baselines b (B,)."""
    return check_function(
        fn, leave_one_out_baseline_reference, _loo_rewards,
        hint="view the rewards as (n_groups, k); sample i's baseline is the mean of the OTHER "
             "k - 1 rewards of its group: (group sum - r_i) / (k - 1). Not the group mean "
             "(that includes r_i), and divide by k - 1, not k. Return shape (B,).")


def best_of_n_kl_reference(n):
    """KL(best-of-n || pi) = log n - (n - 1) / n (moss_lab.methods.best_of_n.analytic_kl)."""
    from .methods.best_of_n import analytic_kl

    return analytic_kl(n)


def check_best_of_n_kl(fn: Callable) -> bool:
    """Lab 10 exercise: fn(n) -> the analytic KL of best-of-n to the base policy, in nats."""
    return check_function(
        fn, best_of_n_kl_reference,
        lambda gen: (int(_pick(gen, (1, 2, 3, 4, 8, 16, 64, 1000))),), n_trials=12,
        atol=1e-7, rtol=1e-7,
        hint="KL = log n - (n - 1) / n, the natural log (math.log), in nats: 0 at n = 1.")
