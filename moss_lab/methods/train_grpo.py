"""GRPO runs through trl's GRPOTrainer (Lab 10), writing the run folder PPO writes.

    train_grpo(GRPOTrainConfig(), run_dir="runs/grpo-1")      the toy world, seconds on a CPU

The loss itself is moss_lab.methods.grpo (checked against trl in tests/test_methods_trl.py);
what is shared with RLOO (prompts, reward, CPU settings) is in train_online.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .train_online import OnlineConfig, train_online


@dataclass
class GRPOTrainConfig(OnlineConfig):
    """GRPO on the toy world (defaults: a CPU run of seconds)."""

    beta: float = 0.04
    """Weight of the k3 KL to the base model in the loss (DeepSeekMath: 0.04; trl 1.16's
    default is 0: no KL and no reference model). objective/kl is measured either way."""
    loss_type: Literal["dapo", "grpo", "bnpo", "dr_grpo"] = "dapo"
    """How token losses are averaged (moss_lab.methods.grpo.grpo_loss): "dapo" (trl's
    default, over all tokens of the batch), "grpo" (per response, then over responses:
    the length bias), "bnpo", "dr_grpo"."""
    scale_rewards: Literal["group", "batch", "none"] = "group"
    """Advantage scaling: divide by the group's std ("group"), the batch's ("batch") or
    not at all ("none", Dr. GRPO)."""

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [(self.beta >= 0, "beta must be >= 0")]


def train_grpo(config: GRPOTrainConfig | None = None, run_dir=None, on_metrics=None,
               should_stop=None, reward=None):
    """Fine-tune config.policy with GRPO against config.reward; return a MethodResult.

    run_dir: config.json, metrics.jsonl (one row per evaluation), samples.jsonl,
    result.json and policy/ (None: nothing written). on_metrics(row) after each row;
    should_stop() checked after every step. Raises MethodError before writing anything
    when the run cannot start. reward: a callable (prompts, responses) -> scores to use
    instead of config.reward (a custom reward function).
    """
    import trl

    config = config or GRPOTrainConfig()
    return train_online("grpo", config, trl.GRPOConfig, trl.GRPOTrainer,
                        {"beta": config.beta, "loss_type": config.loss_type,
                         "scale_rewards": config.scale_rewards},
                        run_dir, on_metrics, should_stop, reward)
