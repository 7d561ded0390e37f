"""Rebuild the toy models the package ships (moss_lab/assets/) from scratch.

Run it after changing the toy world, the pretraining or reward-model recipe, TOY_VERSION
or TOY_RM_VERSION (a version bump alone leaves the package without a shipped copy, and
tests/test_shipped_models.py says so):

    python tools/ship_toy_models.py            # ~9 min on one CPU core

It builds the toy base model (size xs, seed 0), the 4-layer base the toy reward model
starts from (xs-deep, seed 0) and the toy reward model in a temporary data home with the
library's own training code (force=True), then replaces the shipped folders with them and
removes shipped folders of older versions.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    home = Path(tempfile.mkdtemp(prefix="moss-lab-ship-"))
    os.environ["MOSS_LAB_HOME"] = str(home)  # before moss_lab reads it
    # offline, like the tests' fresh build: transformers writes local_files_only into
    # the saved tokenizer_config.json, which the test compares
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    from moss_lab import files
    from moss_lab.models import SHIPPED_DIR, SHIPPED_SIZES, build_toy_model
    from moss_lab.ppo.toy import toy_reward_model_dir

    torch.set_num_threads(1)
    start = time.perf_counter()
    try:
        built = [build_toy_model(size, seed=0, force=True) for size in SHIPPED_SIZES]
        built.append(toy_reward_model_dir("toy", force=True))  # on the xs-deep just built
        for old in SHIPPED_DIR.glob("toy-*"):
            if old.name not in {folder.name for folder in built}:
                shutil.rmtree(old)
        for folder in built:
            with files.building(SHIPPED_DIR / folder.name) as tmp:
                shutil.copytree(folder, tmp, dirs_exist_ok=True)
            size = sum(f.stat().st_size for f in folder.iterdir()) / 1024
            print(f"shipped {SHIPPED_DIR / folder.name} ({size:.0f} KiB)")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"done in {time.perf_counter() - start:.0f} s; run "
          "`pytest tests/test_shipped_models.py` to check a fresh build equals them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
