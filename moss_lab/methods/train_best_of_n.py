"""Best-of-n as a "run" (Lab 10): no training, a ladder of n, the same evaluation as every
method, written to the same run folder.

    train_best_of_n(BestOfNConfig(), run_dir="runs/bon-1")

For each evaluation prompt, `pool` responses are sampled once from the policy and scored
by the reward function; best-of-n keeps the best of the FIRST n of them, so every rung
of the ladder (n = 1, 2, 4, ...) sees the same samples. Each rung is one metrics row
(step = 1, 2, ... along the ladder):

    reward/score, reward/gold, response/length   of the kept responses
    objective/kl          log n - (n - 1) / n, the analytic KL of best-of-n to the policy
                          (an upper bound when responses repeat: moss_lab.methods.best_of_n)
    objective/kl_plugin   the plug-in KL measured on the pool's empirical distribution
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from .. import toyworld
from ..ppo.rollout import sample
from ..run_folder import RunFolder
from ..sampling import decode_responses
from .best_of_n import analytic_kl, plug_in_kl
from .training import EVAL_PROMPT_SEED, MethodResult, NonFinite, check_finite


@dataclass
class BestOfNConfig:
    """Best-of-n on the toy world: no training, an evaluation per n."""

    policy: str = "toy"
    """The policy that samples the candidates: "toy" or a folder saved with save_pretrained."""
    reward: str = "toy"
    """The reward function that picks the best: "toy" (the cached toy reward model), a
    reward-model folder, or "gold" (the ORACLE, teaching only)."""
    ns: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    """The ladder of n: one metrics row each."""
    pool: int = 64
    """Responses sampled per prompt (at least the largest n): best-of-n uses the first n,
    objective/kl_plugin all of them."""
    eval_prompts: int = 64
    """The evaluation prompts (the same fixed toy prompts as every method's evaluation)."""
    max_new_tokens: int = 20
    """Longest response, in tokens."""
    temperature: float = 1.0
    """Sampling temperature."""
    seed: int = 0
    """Seeds the sampling: same seed, same run."""
    threads: int | None = None
    """CPU threads; None: 1 for tiny models, torch's default else."""
    device: str | None = None
    """"cpu", "cuda", "mps", or None for the best available."""
    n_samples: int = 4
    """Kept responses written to samples.jsonl for each n."""

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, with a message naming the field (CLI and app)."""
        self.ns = tuple(self.ns)
        checks = [(len(self.ns) > 0 and all(n >= 1 for n in self.ns), "ns must be numbers >= 1"),
                  (self.pool >= max(self.ns, default=1), "pool must be >= the largest n"),
                  (self.eval_prompts >= 1, "eval_prompts must be >= 1"),
                  (self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
                  (self.temperature > 0, "temperature must be > 0"),
                  (self.n_samples >= 0, "n_samples must be >= 0")]
        errors = [message for ok, message in checks if not ok]
        if errors:
            raise ValueError("invalid BestOfNConfig: " + "; ".join(errors))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@torch.no_grad()
def sample_pool(model, tokenizer, prompts: list[str], k: int, config: BestOfNConfig,
                chunk: int = 1024) -> tuple[list[str], list[bool], list[int]]:
    """k responses per prompt (prompt-major: the k of a prompt are adjacent)."""
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(config.seed)
    repeated = [p for p in prompts for _ in range(k)]
    texts, ended, lengths = [], [], []
    for start in range(0, len(repeated), chunk):
        enc = tokenizer(repeated[start:start + chunk], return_tensors="pt", padding=True)
        ids, mask = sample(model, enc.input_ids.to(device), enc.attention_mask.to(device),
                           config.max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id,
                           config.temperature, 1.0, gen)
        chunk_texts, chunk_ended = decode_responses(tokenizer, repeated[start:start + chunk], ids)
        texts += chunk_texts
        ended += chunk_ended
        lengths += mask.sum(1).long().cpu().tolist()
    return texts, ended, lengths


def train_best_of_n(config: BestOfNConfig | None = None, run_dir=None, on_metrics=None,
                    should_stop=None) -> MethodResult:
    """Evaluate best-of-n for each n of config.ns; return a MethodResult (policy None).

    run_dir: config.json, metrics.jsonl (one row per n), samples.jsonl, result.json.
    should_stop() is checked before each n.
    """
    from ..device import set_cpu_threads
    from ..models import load_policy
    from .training import make_reward_fn

    config = config or BestOfNConfig()
    start = time.perf_counter()
    threads_before = torch.get_num_threads()
    model, tokenizer = load_policy(config.policy, device=config.device, threads=config.threads)
    if next(model.parameters()).device.type == "cpu":
        set_cpu_threads(model.num_parameters(), config.threads)
    reward_fn = make_reward_fn(config.reward, config, tokenizer, next(model.parameters()).device)
    prompts = toyworld.sample_prompts(config.eval_prompts, seed=EVAL_PROMPT_SEED)
    run = RunFolder(run_dir, {"kind": "best-of-n", **config.to_dict()})
    history: list[dict] = []
    status, reason = "finished", f"evaluated n = {', '.join(map(str, config.ns))}"
    try:
        texts, ended, lengths = sample_pool(model, tokenizer, prompts, config.pool, config)
        repeated = [p for p in prompts for _ in range(config.pool)]
        scores = torch.as_tensor(reward_fn(repeated, texts), dtype=torch.float32)
        check_finite("reward function", scores, "the candidates' scores")
        P, k = len(prompts), config.pool
        gold = torch.tensor([toyworld.gold_score(p, r, e).total
                             for p, r, e in zip(repeated, texts, ended)]).view(P, k)
        grid, length = scores.view(P, k), torch.tensor(lengths, dtype=torch.float32).view(P, k)
        ended_grid = torch.tensor(ended, dtype=torch.float32).view(P, k)
        sample_s = time.perf_counter() - start
        for i, n in enumerate(config.ns):
            if should_stop is not None and should_stop():
                status, reason = "stopped", f"stopped on request after {i} of {len(config.ns)} n"
                break
            best = grid[:, :n].argmax(dim=1, keepdim=True)  # ties: the first candidate
            row = {"step": i + 1, "n": n, "episodes": P * n,
                   "reward/score": grid.gather(1, best).mean().item(),
                   "reward/gold": gold.gather(1, best).mean().item(),
                   "objective/kl": analytic_kl(n),
                   "objective/kl_plugin": plug_in_kl(grid, n).mean().item(),
                   "response/length": length.gather(1, best).mean().item(),
                   "response/eos_rate": ended_grid.gather(1, best).mean().item(),
                   "time/sample_s": sample_s, "time/elapsed_s": time.perf_counter() - start}
            history.append(row)
            run.log(row)
            run.samples([{"step": i + 1, "n": n, "prompt": prompts[j],
                          "response": texts[j * k + int(best[j])],
                          "score": grid[j, int(best[j])].item(),
                          "gold": gold[j, int(best[j])].item(),
                          "ended": bool(ended[j * k + int(best[j])])}
                         for j in range(min(config.n_samples, P))])
            if on_metrics is not None:
                on_metrics(row)
    except NonFinite as err:
        status, reason = "nan", f"NaN guard: {err} (check the reward function)"
    finally:
        torch.set_num_threads(threads_before)
    elapsed = time.perf_counter() - start
    run.write("result.json", {"status": status, "reason": reason, "steps": len(history),
                              "elapsed_s": elapsed, "initial": history[0] if history else None,
                              "final": history[-1] if history else None})
    return MethodResult(status, reason, len(history), history, None, tokenizer, run.path, elapsed)
