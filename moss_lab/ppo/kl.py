"""KL to the reference model: per-token estimators and the coefficient controllers.

The samples come from the policy pi, so  KL(pi || ref) = E_{x ~ pi}[log pi(x) - log ref(x)].
With  log r = ref_logp - logp  (Schulman, "Approximating KL divergence", 2020):

    k1 = -log r                 unbiased, high variance, can be negative on one token
    k2 = (log r)^2 / 2          biased (low bias when pi ~ ref), always >= 0
    k3 = (r - 1) - log r        unbiased and always >= 0: the usual choice for a loss

Lab 06 plots the three on the same rollouts.
"""
from __future__ import annotations

import torch

KL_ESTIMATORS = ("k1", "k2", "k3")


def kl_estimate(logp: torch.Tensor, ref_logp: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || ref) from log-probabilities of tokens sampled from pi."""
    log_r = ref_logp - logp
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * log_r ** 2
    if kind == "k3":
        return torch.expm1(log_r) - log_r
    raise ValueError(f"unknown KL estimator {kind!r}; choose one of {KL_ESTIMATORS}")


class FixedKLController:
    """A constant KL coefficient beta."""

    def __init__(self, value: float):
        self.value = float(value)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass


class AdaptiveKLController:
    """Adapt beta so that the measured KL tracks a target (Ziegler et al. 2019):

        e     = clip(KL / target - 1, -0.2, 0.2)
        beta <- beta * (1 + e * n_steps / horizon)

    KL above the target raises beta (a stronger pull to the reference), below lowers it.
    """

    def __init__(self, init: float, target: float, horizon: int):
        self.value, self.target, self.horizon = float(init), float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.value *= 1.0 + error * n_steps / self.horizon
