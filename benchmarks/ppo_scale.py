"""Benchmark: what one PPO iteration costs as the model grows, from the toy model to ~100M.

    .venv/bin/python benchmarks/ppo_scale.py --quick                 # the sizes that fit a laptop
    .venv/bin/python benchmarks/ppo_scale.py                         # every size (a GPU)
    .venv/bin/python benchmarks/ppo_scale.py --sizes xs gpt2-100m --batch 16 --iterations 2

Every size runs real PPO iterations through `moss_lab.ppo.train_ppo` (the toy-fast recipe:
2 epochs x minibatches of 32, a separate critic initialised from the reward model) on the
best device present (CUDA, else MPS, else CPU), on toy-world prompts:

    xs           the toy base model (GPT-2, 2 x 64, ~0.12M) and the cached toy reward model
    gpt2-10m     GPT-2 shape, 6 layers x 384, 6 heads             (~10.8M parameters)
    llama-10m    Llama shape, 6 layers x 384, 6 heads, 2 KV heads (~9.6M; RoPE, SwiGLU, GQA)
    gpt2-100m    GPT-2 shape, 14 layers x 768, 12 heads           (~99M; GPT-2 small's width)

The built sizes are random weights from a `transformers` config with the toy world's
word-level tokenizer (a few hundred tokens, so the parameters are the transformer, not an
embedding table), saved to a temporary folder and loaded by path as a user's model would
be. Their reward model (default `--reward rm`) is a random sequence-classification model
of the same shape: a real RLHF run holds four models of one size (policy, reference,
critic copied from the reward model, reward model), and the cost of that is what is
measured; the scores are noise, which a timing does not mind. `--reward gold` scores with
the toy world's true score instead (no reward model; the critic then starts from the
policy): three models, the lower cost of an oracle.

The last line printed is one JSON object: {"device", "threads", "load_avg", "sizes": [...]}
with, per size:

    params              parameters of the policy (one of the four models)
    s_per_iter          wall seconds per PPO iteration (rollout + rewards + update), the mean
                        over the measured iterations; the first `--warmup` iterations
                        (allocator, kernel selection) are run but not counted
    tokens_per_s        response tokens sampled per second of a whole iteration:
                        batch x mean response length / s_per_iter
    floor_s_per_iter    a lower bound: the seconds inside model passes only (sampling, the
                        reference/critic/reward forward passes, the training forward and
                        backward passes), as benchmarks/ppo.py defines it. s_per_iter /
                        floor is the library's overhead; it should stay near 1 as models grow
    peak_mem_mb         CUDA: torch.cuda.max_memory_allocated during the size's run; CPU: the
                        process's peak resident memory (VmHWM, reset before each size on
                        Linux; elsewhere ru_maxrss, the peak of the whole process so far)

Measured here on 2 CPU cores while other jobs ran (load average 2.6-4 for the first three
rows, 5-8 for gpt2-100m; inflated, the lead will re-measure on an idle machine), 1 thread,
reward rm, 1 warm-up + 2 measured iterations (gpt2-100m: batch 8, 1 measured iteration):

    size        params   batch   s/iter   floor s/iter   tokens/s   peak MB
    xs          0.12M      64      1.15       1.07          967        432
    gpt2-10m   10.8M       64     33.6       33.0            26.5     1750
    llama-10m   9.6M       64     25.8       25.3            41.8     1375
    gpt2-100m  99.5M        8     92.2       87.6             1.6     5366

A 10M model at the toy-fast batch is already a GPU job on a laptop. The floor is 93-98%
of every iteration: the time goes to the model passes, not to the library. tokens/s also
counts how soon a random model samples <eos> (response lengths differ between sizes).
Peak RSS includes ~0.4 GB of Python, torch and transformers.
"""
from __future__ import annotations

import gc
import json
import os
import resource
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

# name -> (architecture, its shape); "toy" is the embedded toy base model.
SIZES: dict[str, tuple[str, dict]] = {
    "xs": ("toy", {}),
    "gpt2-10m": ("gpt2", {"n_layer": 6, "n_embd": 384, "n_head": 6}),
    "llama-10m": ("llama", {"num_hidden_layers": 6, "hidden_size": 384,
                            "intermediate_size": 1024, "num_attention_heads": 6,
                            "num_key_value_heads": 2}),
    "gpt2-100m": ("gpt2", {"n_layer": 14, "n_embd": 768, "n_head": 12}),
}
QUICK = ("xs", "gpt2-10m", "llama-10m")  # minutes on 2 CPU cores at the default batch
SizeName = Literal["xs", "gpt2-10m", "llama-10m", "gpt2-100m"]


@dataclass
class ScaleBenchmark:
    """PPO iterations for a ladder of model sizes; one JSON line of timings at the end."""

    sizes: tuple[SizeName, ...] = tuple(SIZES)  # type: ignore[assignment]
    """The sizes to run, smallest first (see the module docstring)."""
    quick: bool = False
    """Run only the sizes that take minutes on 2 CPU cores (xs, gpt2-10m, llama-10m)."""
    iterations: int = 3
    """Measured PPO iterations per size (after the warm-up ones)."""
    warmup: int = 1
    """Iterations run first and left out of the timing."""
    batch: int = 64
    """Prompts (one response each) per rollout: PPOConfig.batch_size."""
    max_new_tokens: int = 20
    """Longest response, in tokens."""
    reward: Literal["rm", "gold"] = "rm"
    """"rm": a reward model of the policy's size (four models, as in real RLHF); "gold":
    the toy world's true score (no reward model, the critic starts from the policy)."""
    threads: int | None = None
    """CPU threads; None: the library's rule (1 under 5M parameters, torch's default else)."""
    device: str | None = None
    """"cpu", "cuda", "mps"; None: the best present."""
    seed: int = 0
    """Seeds the random weights, prompts and sampling."""

    def __post_init__(self) -> None:
        unknown = [s for s in self.sizes if s not in SIZES]
        if unknown:
            raise ValueError(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
        if self.iterations < 1 or self.warmup < 0:
            raise ValueError("iterations must be >= 1 and warmup >= 0")


def build_model_folders(name: str, root: Path, seed: int) -> tuple[Path, Path]:
    """Random policy and same-shape reward model of size `name`, saved with save_pretrained
    next to the toy tokenizer (dropout 0, as everywhere in the lab). Returns the folders."""
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                              GPT2Config, LlamaConfig)

    from moss_lab.tokenizer import build_toy_tokenizer

    arch, shape = SIZES[name]
    tokenizer = build_toy_tokenizer()
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
           "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    if arch == "gpt2":
        config = GPT2Config(n_positions=tokenizer.model_max_length, resid_pdrop=0.0,
                            embd_pdrop=0.0, attn_pdrop=0.0, **ids, **shape)
    else:
        config = LlamaConfig(max_position_embeddings=tokenizer.model_max_length,
                             attention_dropout=0.0, tie_word_embeddings=False, **ids, **shape)
    config.num_labels = 1  # the reward model's one score (the causal LM ignores it)
    folders = root / "policy", root / "reward"
    torch.manual_seed(seed)
    for folder, cls in zip(folders, (AutoModelForCausalLM, AutoModelForSequenceClassification)):
        model = cls.from_config(config)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        del model
    return folders


def reset_peak_memory(device: torch.device) -> None:
    """Start a fresh peak: CUDA's allocator counter, or Linux's VmHWM (clear_refs 5)."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # not Linux: ru_maxrss below is then the peak of the whole process


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 2**20 if sys.platform == "darwin" else 2**10  # bytes on macOS, kB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def run_size(name: str, options: ScaleBenchmark, device: torch.device, root: Path) -> dict:
    """One size: warm-up + measured PPO iterations; its row of the JSON line."""
    from moss_lab.ppo import PPOConfig, train_ppo

    if SIZES[name][0] == "toy":
        policy, reward = "toy", "toy"
    else:
        policy, reward = (str(p) for p in build_model_folders(name, root / name, options.seed))
    config = PPOConfig(
        policy=policy, reward="gold" if options.reward == "gold" else reward,
        critic_init="policy" if options.reward == "gold" else "reward",
        device=str(device), threads=options.threads, seed=options.seed,
        iterations=options.warmup + options.iterations, batch_size=options.batch,
        minibatch_size=min(32, options.batch), max_new_tokens=options.max_new_tokens,
        critic_pretrain_steps=0,  # not part of an iteration's cost
        sample_every=0, n_samples=0, save_final=False)
    reset_peak_memory(device)
    threads = []  # the thread count train_ppo runs with (it restores the caller's after)
    result = train_ppo(config, on_metrics=lambda row: threads.append(torch.get_num_threads()))
    peak = peak_memory_mb(device)
    if result.status != "finished":
        raise RuntimeError(f"size {name}: the PPO run ended early: {result.reason}")
    rows = result.history[options.warmup:]
    mean = lambda key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    s_per_iter = mean("time/step_s")
    tokens = options.batch * mean("response/length")
    out = {"name": name, "params": result.policy.num_parameters(), "batch": options.batch,
           "max_new_tokens": options.max_new_tokens, "s_per_iter": round(s_per_iter, 4),
           "tokens_per_s": round(tokens / s_per_iter, 1),
           "floor_s_per_iter": round(mean("time/model_s"), 4),
           "peak_mem_mb": round(peak, 1),
           "threads": threads[-1] if device.type == "cpu" else None}
    del result
    gc.collect()
    return out


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; print progress to stderr and the JSON line to stdout; return it."""
    from moss_lab.configs import parse_args
    from moss_lab.device import pick_device

    options = parse_args(ScaleBenchmark, sys.argv[1:] if argv is None else argv,
                         prog="benchmarks/ppo_scale.py")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # saving and loading the built sizes
    device = pick_device(options.device)
    sizes = [s for s in options.sizes if s in QUICK] if options.quick else list(options.sizes)
    load_before = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="ppo-scale-") as root:
        for name in sizes:
            row = run_size(name, options, device, Path(root))
            print(f"{name:10s} {row['params'] / 1e6:7.2f}M  {row['s_per_iter']:8.3f} s/iter  "
                  f"floor {row['floor_s_per_iter']:8.3f}  {row['tokens_per_s']:8.1f} tok/s  "
                  f"peak {row['peak_mem_mb']:8.0f} MB", file=sys.stderr, flush=True)
            rows.append(row)
    out = {"device": str(device), "reward": options.reward, "warmup": options.warmup,
           "iterations": options.iterations,
           "load_avg": [round(load_before, 2), round(os.getloadavg()[0], 2)], "sizes": rows}
    print(json.dumps(out), flush=True)
    return out


if __name__ == "__main__":
    main()
