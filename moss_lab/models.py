"""Loading policies by name, and building/caching the embedded toy base model.

    load_policy("toy")                  the embedded base model (shipped in the package,
                                        copied to the data home on first use)
    load_policy("toy-s")                a bigger toy preset
    load_policy("/path/to/folder")      anything saved with save_pretrained
    load_policy("gpt2")                 a Hugging Face hub id (real from_pretrained)

The default never touches the network.
"""
from __future__ import annotations

import shutil
import threading
import time
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from . import files
from .device import pick_device, set_cpu_threads
from .paths import models_dir
from .pretrain import PRESETS, PretrainConfig, pretrain
from .tokenizer import build_toy_tokenizer

# Bump when the toy world or the recipe changes, so that stale caches are rebuilt (and
# run tools/ship_toy_models.py, so that the package ships the new build).
TOY_VERSION = 1
INFO_FILE = "build_info.json"  # written last: its presence marks a complete build
# The toy models built by the library itself, shipped in the package: the base model
# (toy-xs-seed0-v1), the 4-layer base the toy reward model starts from
# (toy-xs-deep-seed0-v1) and the toy reward model (moss_lab.ppo.toy). A fresh data home
# gets a copy in a second instead of a build of minutes; tests/test_shipped_models.py
# checks that they equal a fresh build, and tools/ship_toy_models.py rebuilds them.
SHIPPED_DIR = Path(__file__).resolve().parent / "assets"
SHIPPED_SIZES = ("xs", "xs-deep")  # the base models shipped, seed 0
_SHIPPED_LOCK = threading.Lock()


class ModelNotFoundError(ValueError):
    """A model name that is neither a toy preset, a local folder, nor a loadable hub id."""


def toy_model_dir(size: str = "xs", seed: int = 0) -> Path:
    return models_dir() / f"toy-{size}-seed{seed}-v{TOY_VERSION}"


def build_toy_model(size: str = "xs", seed: int = 0, force: bool = False,
                    progress: bool = True) -> Path:
    """The toy base model's folder in the data home; return it.

    With force=False an intact cache is kept, and a missing one is copied from the
    package when it ships this model (SHIPPED_SIZES, seed 0); otherwise, or with force=True
    (`moss-lab pretrain --force`), the model is pretrained from scratch (minutes).
    Writes into a temporary folder and renames it into place, so an interrupted build
    never leaves a half-written model behind. Progress goes to a terminal bar and to
    moss_lab.progress.phase (the app's status line; Stop ends the build there).
    """
    from .progress import phase

    target = toy_model_dir(size, seed)
    if not force and _cache_ok(target):
        return target
    if not force and copy_shipped(target, INFO_FILE):
        return target
    what = f"building the toy-{size} base model"
    phase(what)
    tokenizer = build_toy_tokenizer()
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(desc=what, unit="step")

    def on_step(step: int, total: int, loss: float) -> None:
        if bar is not None:
            bar.total = total
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        phase(what, step, total)  # raises StopRequested when the run's Stop was pressed

    threads_before = torch.get_num_threads()
    set_cpu_threads(0)  # a tiny model: 1 thread unless the user says otherwise
    start = time.perf_counter()
    try:
        model, final_loss = pretrain(tokenizer, PretrainConfig(size=size, seed=seed), on_step)
    finally:
        torch.set_num_threads(threads_before)
        if bar is not None:
            bar.close()
    info = {"size": size, "seed": seed, "version": TOY_VERSION, "final_loss": final_loss,
            "params": model.num_parameters(), "seconds": time.perf_counter() - start}
    with files.building(target) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        files.write_json(tmp / INFO_FILE, info)  # written last: the cache is complete
    return target


def _cache_ok(folder: Path) -> bool:
    return (folder / INFO_FILE).is_file() and (folder / "config.json").is_file()


def copy_shipped(target: Path, marker: str) -> bool:
    """Copy the shipped model named like `target` (SHIPPED_DIR/<target's name>) into
    `target`, atomically; False when the package ships no complete model of that name
    (another size or seed, or a version it was not rebuilt for)."""
    source = SHIPPED_DIR / target.name
    if not (source / marker).is_file():
        return False
    with _SHIPPED_LOCK:  # two first users at once (the Label tab and a run): one copy
        if not (target / marker).is_file():
            with files.building(target) as tmp:
                shutil.copytree(source, tmp, dirs_exist_ok=True)
    return True


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def check_model_folder(folder: str | Path, what: str = "model") -> Path:
    """Raise ModelNotFoundError, naming what is missing and what to do, unless `folder`
    looks like a model saved with save_pretrained (config.json with a model_type, weights,
    tokenizer files). Returns the folder as a Path."""
    folder = Path(folder).expanduser()
    how = ("save the model and its tokenizer with model.save_pretrained(folder) and "
           "tokenizer.save_pretrained(folder)")
    if not folder.is_dir():
        raise ModelNotFoundError(f"{what} folder {folder} does not exist")
    config = files.read_json(folder / "config.json")
    if not isinstance(config, dict) or "model_type" not in config:
        found = ", ".join(sorted(p.name for p in folder.iterdir())[:8]) or "nothing"
        problem = ("has no config.json" if not (folder / "config.json").is_file()
                   else "has a config.json without a model_type")
        raise ModelNotFoundError(
            f"{folder} is not a model folder: it {problem} (found: {found}). Give a folder "
            f"written by save_pretrained (config.json, model.safetensors, tokenizer files), "
            f"a run's model/ or policy/ folder, or 'toy'; to make one, {how}")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ModelNotFoundError(f"{folder} has a config.json but no weights "
                                 f"(model.safetensors): {how}")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise ModelNotFoundError(f"{folder} has a model but no tokenizer (tokenizer.json): "
                                 f"{how}")
    return folder


def _load_folder(folder: Path):
    folder = check_model_folder(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


def ensure_pad_token(model, tokenizer, name: str = "the model"):
    """Left padding, and a pad token distinct from eos (reward models read the last non-pad
    token, attention masks are ids != pad). A tokenizer without one (GPT-2's habit) or
    padding with eos gets '<pad>' added, the embeddings grow by one row, and a note says so.
    The same base always gets the same id, so a policy and a reward model built from it
    still share a vocabulary."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        had = tokenizer.pad_token
        tokenizer.add_special_tokens({"pad_token": "<pad>"})
        grown = ""
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
            grown = f" and grew the embeddings to {len(tokenizer)} rows"
        warnings.warn(
            f"note: the tokenizer of {name} "
            + ("has no pad token" if had is None else f"pads with its eos token {had!r}")
            + f"; added '<pad>' (id {tokenizer.pad_token_id}){grown} (saved models keep it). "
            "To avoid this, give the tokenizer a pad token distinct from eos before saving it.",
            stacklevel=3)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def resolve_toy(name: str) -> str | None:
    """'toy' -> 'xs', 'toy-s' -> 's'; None for names that are not toy presets."""
    if name == "toy":
        return "xs"
    if name.startswith("toy-") and name[4:] in PRESETS:
        return name[4:]
    return None


def load_policy(name: str = "toy", device: str | None = None, threads: int | None = None,
                seed: int = 0):
    """Load a causal LM and its tokenizer by name; return (model, tokenizer).

    The model is in eval mode on `device` (auto: cuda, then mps, then cpu). The tokenizer
    pads on the left and has a pad token distinct from eos (added if the model had none).
    """
    name = str(name)
    size = resolve_toy(name)
    if size is not None:
        folder = build_toy_model(size, seed)
        try:
            model, tokenizer = _load_folder(folder)
        except Exception as err:  # a corrupt cache is rebuilt, not a crash
            warnings.warn(f"cached toy model at {folder} is unreadable ({err}); rebuilding")
            folder = build_toy_model(size, seed, force=True)
            model, tokenizer = _load_folder(folder)
    elif Path(name).expanduser().is_dir():
        model, tokenizer = _load_folder(Path(name).expanduser())
    elif name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelNotFoundError(f"model folder {name} does not exist (a typo? a run's "
                                 "policy/ folder that was not saved?)")
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(name)
            tokenizer = AutoTokenizer.from_pretrained(name)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(
                f"unknown model {name!r}: it is not a toy preset "
                f"({', '.join(['toy'] + ['toy-' + s for s in PRESETS])}), not a local folder, "
                f"and it could not be loaded from the Hugging Face hub "
                f"(offline, or no such repository). Details: {err}"
            ) from err
    model, tokenizer = ensure_pad_token(model, tokenizer, repr(name))
    dev = pick_device(device)
    if dev.type == "cpu":
        set_cpu_threads(model.num_parameters(), threads)
    return model.to(dev).eval(), tokenizer
