"""`moss-lab pretrain`: build or rebuild the toy base model in the data home.

Ctrl-C aborts the build and keeps nothing: a half-trained base model must not become the
cached one, and the build never leaves a half-written folder (moss_lab.files.building).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from ..configs import parse_args


@dataclass
class Pretrain:
    """Build (or rebuild) the toy base model: pretrain a tiny GPT-2 on the toy corpus."""

    size: Literal["xs", "s", "xs-deep"] = "xs"
    """Model size: "xs" (2 layers, ~0.12M parameters, the default everywhere), "s" (4x128,
    ~0.83M) or "xs-deep" (4x64, ~0.22M, for deeper reward models)."""
    seed: int = 0
    """Seeds the corpus, the initialisation and the batch order."""
    force: bool = False
    """Rebuild even if the model is already cached."""


def main(argv: list[str]) -> int:
    from ..models import INFO_FILE, build_toy_model

    options = parse_args(Pretrain, argv, prog="moss-lab pretrain")
    try:
        folder = build_toy_model(options.size, options.seed, force=options.force)
    except KeyboardInterrupt:
        print("\nstopped: the base model was not saved (nothing half-built is left)")
        return 130
    info = json.loads((folder / INFO_FILE).read_text())
    print(f"base model ready at {folder}")
    print(f"  {info['params']:,} parameters, final loss {info['final_loss']:.3f}, "
          f"built in {info['seconds']:.0f} s")
    return 0
