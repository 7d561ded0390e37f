"""The `moss-lab` command line.

Each subcommand lives in the module that does the work: the module has
`add_arguments(parser)` and `main(args) -> int`. Add a line to SUBCOMMANDS to add one.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "pretrain": ("moss_lab.pretrain_cli", "build (or rebuild) the toy base model"),
    "app": ("moss_lab.app_cli", "start the Gradio lab app"),
    "train-rm": ("moss_lab.reward_cli", "train a reward model on preference pairs"),
    "ppo": ("moss_lab.ppo.cli", "fine-tune a policy with PPO against a reward model"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="moss-lab", description="RLHF, hands-on, on a laptop.")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if not module_name.startswith(err.name or "?"):
                raise
            continue  # a subcommand whose module is not written yet
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return modules[args.command].main(args) or 0


if __name__ == "__main__":
    sys.exit(main())
