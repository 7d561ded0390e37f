"""RLOO runs through trl's RLOOTrainer (Lab 10), writing the run folder PPO writes.

    train_rloo(RLOOTrainConfig(), run_dir="runs/rloo-1")      the toy world, seconds on a CPU

The math is moss_lab.methods.rloo (checked against trl in tests/test_methods_trl.py); what
is shared with GRPO (prompts, reward, CPU settings) is in train_online.
"""
from __future__ import annotations

from dataclasses import dataclass

from .train_online import OnlineConfig, train_online


@dataclass
class RLOOTrainConfig(OnlineConfig):
    """RLOO on the toy world (defaults: a CPU run of seconds)."""

    beta: float = 0.05
    """KL penalty: beta * sum_t (log pi - log pi_base) is subtracted from each response's
    reward (trl 1.16's default 0.05; 0: no KL and no reference model)."""
    normalize_advantages: bool = False
    """Standardise the leave-one-out advantages over the batch (trl's default: off)."""

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [(self.beta >= 0, "beta must be >= 0")]


def train_rloo(config: RLOOTrainConfig | None = None, run_dir=None, on_metrics=None,
               should_stop=None, reward=None):
    """Fine-tune config.policy with RLOO against config.reward; return a MethodResult.
    Arguments and run folder as for moss_lab.methods.train_grpo.train_grpo."""
    import trl

    config = config or RLOOTrainConfig()
    return train_online("rloo", config, trl.RLOOConfig, trl.RLOOTrainer,
                        {"beta": config.beta, "normalize_advantages": config.normalize_advantages},
                        run_dir, on_metrics, should_stop, reward)
