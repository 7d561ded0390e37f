"""Benchmark: build the default toy base model from scratch and measure its samples.

    python benchmarks/pretrain.py [--size xs] [--seed 0]

Builds into a fresh temporary data home (the real cache is left alone), then samples 500
responses. The last line printed is one JSON object: seconds, params, final_loss,
gold_mean, eos_rate, grammatical_rate, weights_sha256 (equal across runs with one seed).
"""
import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--size", default="xs")
parser.add_argument("--seed", type=int, default=0)
args = parser.parse_args()

os.environ["MOSS_LAB_HOME"] = tempfile.mkdtemp(prefix="moss-lab-bench-")
os.environ["HF_HUB_OFFLINE"] = "1"

from moss_lab import toyworld  # noqa: E402
from moss_lab.models import INFO_FILE, build_toy_model, load_policy  # noqa: E402
from moss_lab.sampling import generate  # noqa: E402

start = time.perf_counter()
folder = build_toy_model(args.size, args.seed, progress=False)
seconds = time.perf_counter() - start
info = json.loads((folder / INFO_FILE).read_text())

model, tok = load_policy(f"toy-{args.size}" if args.size != "xs" else "toy", seed=args.seed)
prompts = toyworld.sample_prompts(500, seed=1234)
samples = generate(model, tok, prompts, max_new_tokens=48, seed=0)
gold = [toyworld.gold_score(p, r, e).total
        for p, r, e in zip(prompts, samples.responses, samples.ended)]
weights = (folder / "model.safetensors").read_bytes()

print(json.dumps({
    "size": args.size,
    "seconds": round(seconds, 1),
    "params": info["params"],
    "final_loss": round(info["final_loss"], 4),
    "gold_mean": round(statistics.mean(gold), 3),
    "eos_rate": sum(samples.ended) / len(prompts),
    "grammatical_rate": sum(map(toyworld.is_grammatical, samples.responses)) / len(prompts),
    "weights_sha256": hashlib.sha256(weights).hexdigest()[:16],
}))
