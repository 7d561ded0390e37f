"""The toy world's pieces a PPO run needs: a cached toy reward model, prompts, ptx texts.

`toy_reward_model_dir()` gives a reward model trained on simulated-annotator preferences
between two samples of the toy base model (the pipeline of Lab 03), cached in the data
home next to the base model. The package ships the one for "toy" (copied on first use;
tools/ship_toy_models.py rebuilds it); others are trained on first use (~45 s). The gold
score only labels the pairs through the noisy annotator; PPO then trains against this
learned proxy, never against gold.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch

from .. import files, toyworld
from ..models import build_toy_model, copy_shipped, resolve_toy
from ..paths import models_dir
from ..progress import phase, simulated_pairs

TOY_RM_VERSION = 3
TOY_RM_PAIRS = 4000
TOY_RM_SEED = 0
RM_INFO_FILE = "rm_info.json"  # written last: its presence marks a complete build


def toy_reward_model_dir(policy: str = "toy", force: bool = False) -> Path:
    """Folder of the toy reward model for a toy policy: the cache, else the shipped copy,
    else (or with force=True) trained from scratch (~45 s; progress and Stop through
    moss_lab.progress.phase)."""
    size = resolve_toy(policy) or "xs"
    target = models_dir() / f"toy-rm-{size}-seed{TOY_RM_SEED}-n{TOY_RM_PAIRS}-v{TOY_RM_VERSION}"
    if not force and (target / RM_INFO_FILE).is_file():
        return target
    if not force and copy_shipped(target, RM_INFO_FILE):
        return target
    base = build_toy_model(size, seed=0)
    model, tokenizer, info = _train(base, TOY_RM_SEED, TOY_RM_PAIRS)
    with files.building(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files.write_json(tmp / RM_INFO_FILE, info)  # written last: the cache is complete
    return target


def _train(base: Path, seed: int, n_pairs: int):
    """Train with moss_lab.reward (the Lab 03 library)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..reward import RewardConfig, split_sizes, train_reward_model

    what = "building the toy reward model (first use only)"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        phase(what + ": loading the base model")
        policy = AutoModelForCausalLM.from_pretrained(base).eval()
        tokenizer = AutoTokenizer.from_pretrained(base)
        annotator = toyworld.SimulatedAnnotator(noise=1.0, seed=seed)
        pairs = simulated_pairs(policy, tokenizer, n_pairs, annotator, seed=seed,
                                what=f"{what}: generating {n_pairs} pairs")
        config = RewardConfig(base=str(base), seed=seed)
        steps = math.ceil(split_sizes(n_pairs, config.eval_fraction)[0] / config.batch_size)
        # every step reports its progress, and phase() ends the build when Stop was pressed
        model, rm_tokenizer, metrics = train_reward_model(
            pairs, config, on_metrics=lambda row: phase(f"{what}: training", row["step"],
                                                        steps * config.epochs))
    finally:
        torch.set_num_threads(threads)
    info = {"base": base.name, "seed": seed, "pairs": n_pairs, "version": TOY_RM_VERSION,
            "metrics": {k: v for k, v in (metrics or {}).items()
                        if isinstance(v, (int, float, str, bool))}}
    return model, rm_tokenizer, info


def toy_ptx_texts(n: int, seed: int = 0) -> list[str]:
    """Base-model data for the ptx loss: prompt + response texts of the toy corpus."""
    return [p + r for p, r, _ in toyworld.sample_corpus(n, seed=seed + 12345)]
