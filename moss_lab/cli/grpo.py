"""`moss-lab grpo`: fine-tune a policy with GRPO (trl's GRPOTrainer) against a reward model.

    moss-lab grpo                                   # the toy world, ~30 s on a laptop CPU
    moss-lab grpo --reward gold --beta 0            # the oracle reward, no KL (Lab 10)
    moss-lab grpo --group-size 4 --loss-type grpo   # smaller groups, the paper's averaging

Every GRPOTrainConfig field is a flag (--field-name); `--help` shows their docstrings.
Ctrl-C stops after the current step and still saves the run.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    from ..methods.train_grpo import GRPOTrainConfig, train_grpo
    from .run import method_main

    return method_main("grpo", GRPOTrainConfig, train_grpo, argv, total=lambda c: c.steps)
