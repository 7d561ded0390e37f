"""`moss-lab dpo`: fine-tune a policy with DPO (trl's DPOTrainer) on preference pairs.

    moss-lab dpo                                    # simulated toy labels, ~30 s on a CPU
    moss-lab dpo --data labels                      # your votes in the app's label store
    moss-lab dpo --data pairs.jsonl --beta 0.3      # prompt/chosen/rejected records

Every DPOTrainConfig field is a flag (--field-name); `--help` shows their docstrings.
Too few labels, or only ties, stop the command before anything is written. Ctrl-C stops
after the current step and still saves the run.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    import math

    from ..methods.train_dpo import DPOTrainConfig, train_dpo
    from .run import method_main

    def total(config):  # the steps are known before the labels are read only for toy pairs
        if config.data == "toy":
            return math.ceil(config.pairs / config.batch_size) * config.epochs
        return None

    return method_main("dpo", DPOTrainConfig, train_dpo, argv, total=total)
