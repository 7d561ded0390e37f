"""`moss-lab pretrain`: build or rebuild the toy base model in the data home."""
from __future__ import annotations

import json

from .pretrain import PRESETS


def add_arguments(parser) -> None:
    parser.add_argument("--size", default="xs", choices=sorted(PRESETS), help="model size preset")
    parser.add_argument("--seed", type=int, default=0, help="seed for corpus, init and order")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")


def main(args) -> int:
    from .models import INFO_FILE, build_toy_model

    folder = build_toy_model(args.size, args.seed, force=args.force)
    info = json.loads((folder / INFO_FILE).read_text())
    print(f"base model ready at {folder}")
    print(f"  {info['params']:,} parameters, final loss {info['final_loss']:.3f}, "
          f"built in {info['seconds']:.0f} s")
    return 0
