"""`moss-lab best-of-n`: evaluate best-of-n sampling for a ladder of n (no training).

    moss-lab best-of-n                              # n = 1 ... 32 on the toy world, ~20 s
    moss-lab best-of-n --ns 1 4 16 64 --pool 128    # a longer ladder
    moss-lab best-of-n --reward gold                # pick with the oracle (Lab 10)

Every BestOfNConfig field is a flag (--field-name); `--help` shows their docstrings. One
metrics row per n, in a run folder like every training method's.
"""
from __future__ import annotations


def main(argv: list[str]) -> int:
    from ..methods.train_best_of_n import BestOfNConfig, train_best_of_n
    from .run import method_main

    return method_main("best-of-n", BestOfNConfig, train_best_of_n, argv,
                       total=lambda c: len(c.ns), unit="n")
