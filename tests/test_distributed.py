"""Data parallelism (moss_lab.distributed, docs/scale_out.md): two CPU processes (gloo,
started by torchrun) must compute what one process computes on the same global batch.

Sampling noise depends on how a batch is split, so the runs compared here sample each
prompt with its own generator, seeded by (rollout, global prompt index): the rollouts are
then the same token for token, and what is compared is everything after them (reward
moments, whitening, losses, gradient averaging, the KL controller, the metrics, the
weights). Each minibatch is the whole batch, since 2 processes shuffle their halves apart.
Whitening or normalising rewards per process instead must fail the comparison.

This file is also the worker script: `torchrun --nproc_per_node 2 tests/test_distributed.py OUT`.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from moss_lab import distributed, reward
from moss_lab.ppo import PPOConfig
from moss_lab.ppo.advantages import masked_moments
from moss_lab.preferences import Preference

rollout_module = importlib.import_module("moss_lab.ppo.rollout")  # the module, not rollout()

PPO = dict(iterations=2, batch_size=8, minibatch_size=8, ppo_epochs=2, max_new_tokens=20,
           critic_pretrain_steps=1, kl_target=1.0, sample_every=1, n_samples=2, seed=0,
           threads=1)
# 37 training pairs in batches of 9: shares of 5 and 4 pairs (weights matter), and a last
# batch of one pair that leaves the second process without one
RM = dict(epochs=2, batch_size=9, warmup_steps=2, threads=1, seed=0)
TOL = 1e-4  # measured: 2 processes vs 1 differ by < 1e-6; per-process moments by > 5e-2,
#            no loss weights by 2e-2


# ---------------------------------------------------------------------------------------
# What both sides run
# ---------------------------------------------------------------------------------------
def per_prompt_sampler():
    """rollout.sample with one generator per prompt, seeded by (call, global row); each row
    sampled alone, without padding, so the tokens do not depend on the split."""
    real, calls = rollout_module.sample, [0]

    def sample(model, prompt_ids, prompt_mask, max_new_tokens, eos_id, pad_id,
               temperature=1.0, top_p=1.0, generator=None):
        rank = distributed.world()[0]
        rows = []
        for i in range(len(prompt_ids)):
            keep = prompt_mask[i].bool()
            g = torch.Generator().manual_seed(1000 * calls[0] + rank * len(prompt_ids) + i)
            ids, mask = real(model, prompt_ids[i:i + 1, keep], prompt_mask[i:i + 1, keep],
                             max_new_tokens, eos_id, pad_id, temperature, top_p, g)
            rows.append((ids[0], mask[0]))
        calls[0] += 1
        T = max(len(ids) for ids, _ in rows)
        ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), T)
        for i, (r, m) in enumerate(rows):
            ids[i, :len(r)], mask[i, :len(m)] = r, m
        return ids.to(prompt_ids.device), mask.to(prompt_ids.device)

    return sample


def local_moments():
    """RunningMoments fed this process's scores only (the mistake the test must catch)."""
    from moss_lab.ppo.rewards import RunningMoments

    moments = RunningMoments()
    update = moments.update
    moments.update = lambda xs: update(distributed.my_share(xs))
    return moments


def run_ppo(out: Path, variant: str = "global") -> None:
    """A short PPO run with per-prompt sampling; history and weights to out/<variant>.*."""
    import moss_lab.ppo.trainer as trainer

    saved = (rollout_module.sample, distributed.global_moments, trainer.RunningMoments)
    rollout_module.sample = per_prompt_sampler()
    if variant == "local_whiten":
        distributed.global_moments = masked_moments
    if variant == "local_moments":
        trainer.RunningMoments = local_moments
    try:
        result = trainer.train_ppo(PPOConfig(**PPO), run_dir=out / f"run-{variant}")
    finally:
        rollout_module.sample, distributed.global_moments, trainer.RunningMoments = saved
    save(out, variant, result.history, result.policy, result.critic)


def read_pairs(path: Path) -> list[Preference]:
    return [Preference(**json.loads(line)) for line in path.read_text().splitlines()]


def run_rm(out: Path) -> None:
    rows = []
    model, _, final = reward.train_reward_model(
        read_pairs(out / "train.jsonl"), reward.RewardConfig(**RM), run_dir=out / "run-rm",
        on_metrics=rows.append, eval_pairs=read_pairs(out / "eval.jsonl"))
    save(out, "rm", rows, model)


def save(out: Path, name: str, rows: list[dict], *models) -> None:
    rank = distributed.world()[0]
    if rank == 0:
        (out / f"{name}.json").write_text(json.dumps(
            [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]))
    weights = {f"{i}.{k}": v.detach().cpu().clone() for i, m in enumerate(models)
               for k, v in m.state_dict().items()}
    torch.save(weights, out / f"{name}.rank{rank}.pt")


def worker(out: Path) -> None:
    for variant in ("global", "local_whiten", "local_moments"):
        run_ppo(out, variant)
    run_rm(out)
    try:
        from moss_lab.ppo.trainer import train_ppo

        train_ppo(PPOConfig(**{**PPO, "batch_size": 7}))
    except ValueError as err:
        (out / f"refused.rank{distributed.world()[0]}.txt").write_text(str(err))


# ---------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------
def test_helpers_are_the_identity_alone():
    torch.manual_seed(0)
    x, mask = torch.randn(4, 6), (torch.rand(4, 6) > 0.3).float()
    assert distributed.world() == (0, 1) and distributed.is_main()
    mean, var = distributed.global_moments(x, mask)
    ref_mean, ref_var = masked_moments(x, mask)
    assert torch.equal(mean, ref_mean) and torch.equal(var, ref_var)  # bit for bit
    assert distributed.gather_rows(x) is x and distributed.share(7) == 1.0
    assert distributed.my_rows([3, 1, 2]) == [3, 1, 2] and distributed.my_share("abc") == "abc"
    assert distributed.mean_stats({"a": 0.5}, 3) == {"a": 0.5}
    assert distributed.any_true(True) and not distributed.any_true(False)


def test_weights_make_the_mean_of_means_the_global_mean():
    """sum_r w_r L_r / W with w_r = W n_r / N is the mean over all N items (brute force)."""
    shares = [torch.randn(5), torch.randn(3)]
    W, N = len(shares), sum(len(s) for s in shares)
    averaged = sum(W * len(s) / N * s.mean() for s in shares) / W
    assert torch.allclose(averaged, torch.cat(shares).mean())


def test_deepspeed_and_fsdp_configs_are_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for key in ("ACCELERATE_USE_DEEPSPEED", "ACCELERATE_USE_FSDP"):
        monkeypatch.setenv(key, "true")
        with pytest.raises(ValueError, match="data parallel only.*ddp.yaml"):
            distributed.world()
        monkeypatch.delenv(key)


def max_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def rows_diff(a: list[dict], b: list[dict]) -> float:
    """Largest relative difference of the numeric metrics of two runs."""
    assert len(a) == len(b) and [r.keys() for r in a] == [r.keys() for r in b]
    return max(abs(x[k] - y[k]) / max(1.0, abs(y[k])) for x, y in zip(a, b) for k in x
               if isinstance(x[k], float) and x[k] == x[k])


def seen_by_bt(d: dict) -> dict:
    """What the Bradley-Terry loss constrains. It sees reward differences only, so the
    parameters that shift every reward alike (the final LayerNorm's bias; the attention
    key biases, which softmax ignores) get a zero true gradient, and AdamW turns its float
    noise into lr-sized steps (measured: 7e-4 apart after 10 steps, all else < 3e-5).
    Likewise reward/mean drifts with them, and reward/std is a mean over processes."""
    skip = ("ln_f.bias", "attn.c_attn.bias", "reward/mean", "eval/reward_mean", "reward/std")
    return {k: v for k, v in d.items() if not k.endswith(skip)}


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, toy_policy):
    from moss_lab import toyworld
    from moss_lab.preferences import toy_pairs

    pairs = toy_pairs(*toy_policy, 45, toyworld.SimulatedAnnotator(noise=1.0, seed=0), seed=0)
    for name, part in (("train", pairs[:37]), ("eval", pairs[37:])):
        (tmp_path / f"{name}.jsonl").write_text(
            "".join(json.dumps(p.to_dict()) + "\n" for p in part))
    one, two = tmp_path / "one", tmp_path / "two"
    for folder in (one, two):
        folder.mkdir()
        for name in ("train.jsonl", "eval.jsonl"):
            (folder / name).write_bytes((tmp_path / name).read_bytes())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    launch = subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", __file__, str(two)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    run_ppo(one)  # the single-process reference, meanwhile
    run_rm(one)
    try:
        log, _ = launch.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        launch.kill()
        pytest.fail("the 2-process run did not finish in 240 s")
    assert launch.returncode == 0, log[-3000:]

    # PPO: metrics (global), weights, and the processes kept the same weights
    ref = json.loads((one / "global.json").read_text())
    assert rows_diff(json.loads((two / "global.json").read_text()), ref) < TOL
    w1 = torch.load(one / "global.rank0.pt")
    assert max_diff(torch.load(two / "global.rank0.pt"), w1) < TOL
    assert max_diff(torch.load(two / "global.rank1.pt"), torch.load(two / "global.rank0.pt")) == 0
    assert ref[-1]["objective/kl_coef"] != 0.05  # the adaptive controller moved, alike
    # per-process whitening or reward moments: not the single-process run
    for variant in ("local_whiten", "local_moments"):
        rows = json.loads((two / f"{variant}.json").read_text())
        assert rows_diff(rows, ref) > 100 * TOL, variant
    # one run folder, written once (rank 1 wrote nothing)
    run = two / "run-global"
    assert len((run / "metrics.jsonl").read_text().splitlines()) == PPO["iterations"]
    assert (run / "policy" / "config.json").is_file() and (run / "result.json").is_file()
    assert len((run / "samples.jsonl").read_text().splitlines()) == 2 * PPO["iterations"]

    # reward model: per-step metrics (pair-weighted), held-out metrics, weights
    rm_ref = json.loads((one / "rm.json").read_text())
    rm_two = json.loads((two / "rm.json").read_text())
    assert len(rm_two) == len(rm_ref) == 2 * (5 + 1)  # 5 steps + 1 evaluation per epoch
    assert rows_diff(*[[seen_by_bt(r) for r in rows] for rows in (rm_two, rm_ref)]) < TOL
    assert max_diff(*[seen_by_bt(torch.load(f / "rm.rank0.pt")) for f in (two, one)]) < 2 * TOL
    assert (two / "run-rm" / "model" / "config.json").is_file()
    assert len((two / "run-rm" / "metrics.jsonl").read_text().splitlines()) == len(rm_ref)

    # an indivisible global batch is refused by every process, naming the fix
    for rank in (0, 1):
        message = (two / f"refused.rank{rank}.txt").read_text()
        assert "batch_size 7 does not split over 2 processes" in message
        assert "multiple of 2" in message


if __name__ == "__main__":
    torch.set_num_threads(1)
    worker(Path(sys.argv[1]))
