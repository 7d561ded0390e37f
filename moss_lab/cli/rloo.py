"""`moss-lab rloo`: fine-tune a policy with RLOO (trl's RLOOTrainer) against a reward model.

    moss-lab rloo                                   # the toy world, ~40 s on a laptop CPU
    moss-lab rloo --group-size 2 --beta 0           # the smallest group, no KL (Lab 10)

Every RLOOTrainConfig field is a flag (--field-name); `--help` shows their docstrings.
Ctrl-C stops after the current step and still saves the run.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    from ..methods.train_rloo import RLOOTrainConfig, train_rloo
    from .run import method_main

    return method_main("rloo", RLOOTrainConfig, train_rloo, argv, total=lambda c: c.steps)
