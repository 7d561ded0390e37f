"""The `moss-lab` command line: one short module per subcommand.

    moss-lab <command> [--flags]      moss-lab --help (the commands)      moss-lab <command> --help

Each module has a dataclass of the command's options (with the training config nested in
it, for train-rm and ppo) and `main(argv) -> int`. Every flag comes from a dataclass field
through tyro (moss_lab.configs.parse_args): `--field-name VALUE`, `--flag/--no-flag` for
bools, `None` (or `none`) for an optional field; the docstring under a field is its help.
"""
from __future__ import annotations

import importlib
import os
import sys

# Idle OpenMP threads sleep instead of spinning (read once, when torch loads; the run and
# pair-sampling processes the app starts inherit it). Toy PPO with 2 threads on 2 cores:
# 0.21-0.25 s/iteration spinning, 0.25-0.27 sleeping when nothing else runs, but 0.74-4.8
# against 0.35-0.36 s beside one other busy process (a browser, a second run)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from moss_lab.memory import NotEnoughMemory  # noqa: E402

# name -> (module in moss_lab/cli/, one line of help)
COMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("pretrain", "build (or rebuild) the toy base model"),
    "app": ("app", "start the Gradio lab app"),
    "users": ("users", "the accounts of a class: add, reset, list, remove (moss-lab app --users)"),
    "train-rm": ("train_rm", "train a reward model on preference pairs"),
    "ppo": ("ppo", "fine-tune a policy with PPO against a reward model"),
    "dpo": ("dpo", "fine-tune a policy with DPO on preference pairs (trl)"),
    "grpo": ("grpo", "fine-tune a policy with GRPO against a reward model (trl)"),
    "rloo": ("rloo", "fine-tune a policy with RLOO against a reward model (trl)"),
    "best-of-n": ("best_of_n", "evaluate best-of-n sampling for a ladder of n (no training)"),
    "eval": ("eval", "compare two policies: win rates with 95% intervals"),
    "board": ("board", "leaderboard of the compared policies (Bradley-Terry, 95% intervals)"),
    "export-labels": ("export_labels", "write the stored labels as a dataset for trl's trainers"),
    "grade": ("grade", "grade student lab notebooks: a CSV and a report per student"),
}


def usage() -> str:
    lines = ["usage: moss-lab <command> [--flags]      (moss-lab <command> --help for its flags)",
             "", "RLHF, hands-on, on a laptop.", "", "commands:"]
    lines += [f"  {name:10s} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"moss-lab: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    if os.environ.get("RANK", "0") != "0":  # under torchrun/accelerate: one process speaks
        sys.stdout = open(os.devnull, "w")   # (errors still reach stderr)
    try:
        return module.main(rest) or 0
    except SystemExit as exit:  # tyro: --help (0) or a bad flag (2, after its message)
        return exit.code if isinstance(exit.code, int) else 1
    except KeyboardInterrupt:  # the second Ctrl-C (moss_lab.cli.stop)
        print("\naborted", file=sys.stderr)
        return 130
    except (ValueError, OSError, NotEnoughMemory) as err:  # bad input (or models too big)
        if os.environ.get("MOSS_LAB_DEBUG"):  # found once running: a message, not a traceback
            raise                             # (MOSS_LAB_DEBUG=1 shows it)
        print(f"moss-lab {name}: error: {err}", file=sys.stderr)
        return 2
