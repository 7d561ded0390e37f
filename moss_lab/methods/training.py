"""What every trainer of moss_lab.methods shares (DPO, GRPO, RLOO through trl; best-of-n).

    MethodConfig      the fields every method has: policy, seed, threads, the evaluation
    Evaluator         THE evaluation, the same for every method: sample a response to each
                      of a fixed set of toy prompts from the current policy and measure
                      reward/score, reward/gold, objective/kl (k1 to the base model on the
                      policy's own samples), response/length
    LogCallback       a transformers.TrainerCallback: trl's logs -> our metrics rows (with
                      the evaluation), should_stop -> control.should_training_stop
    run_trl           runs a trl trainer and writes the run folder like train_ppo does:
                      config.json, metrics.jsonl, samples.jsonl, result.json, policy/

A run that cannot start (too few labels, a group of 1, ...) raises MethodError before
anything is written; a reward that turns NaN ends the run with status "nan", no policy
saved, and the reason in result.json.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from .. import toyworld
from ..device import is_out_of_memory, out_of_memory_kind
from ..ppo.rollout import policy_forward, sample, sequence_inputs
from ..ppo.trainer import NonFinite  # one NaN guard for PPO and every method
from ..run_folder import RunFolder
from ..sampling import decode_responses

EVAL_PROMPT_SEED = 20_240_601  # the same evaluation prompts for every method and seed


class MethodError(ValueError):
    """A run that cannot start (bad data or settings); nothing was written."""


@dataclass
class MethodResult:
    status: str                 # "finished", "stopped" (should_stop) or "nan"
    reason: str                 # why it ended, in words
    steps: int                  # optimiser steps done (best-of-n: the rungs of the ladder)
    history: list[dict]         # the metrics rows (as in metrics.jsonl)
    policy: object = None       # the trained policy (None for best-of-n)
    tokenizer: object = None
    run_dir: Path | None = None
    elapsed_s: float = 0.0


@dataclass
class MethodConfig:
    """The fields every method has (subclasses add theirs)."""

    policy: str = "toy"
    """The policy to start from: "toy" (the embedded base model) or a folder saved with
    save_pretrained. It is also the base model that objective/kl is measured against."""
    seed: int = 0
    """Seeds data, sampling and the evaluation's samples: same seed, same run."""
    threads: int | None = None
    """CPU threads; None: 1 for tiny models (faster on a busy laptop), torch's default else."""
    device: str | None = None
    """"cpu", "cuda", "mps", or None for the best available."""
    max_new_tokens: int = 20
    """Longest response, in tokens (training samples and the evaluation)."""
    temperature: float = 1.0
    """Sampling temperature (training samples and the evaluation)."""
    eval_prompts: int = 64
    """The evaluation: responses to this many fixed toy prompts, one each, from the current
    policy; reward/score, reward/gold, objective/kl and response/length come from them."""
    eval_every: int = 5
    """Evaluate (and write a metrics row) every this many optimiser steps, at the start
    and at the end."""
    n_samples: int = 4
    """Evaluation responses written to samples.jsonl at each evaluation."""
    save_final: bool = True
    """Save the final policy (and tokenizer) to <run_dir>/policy with save_pretrained."""

    def checks(self) -> list[tuple[bool, str]]:
        """(condition, message) pairs; subclasses extend the list."""
        return [(self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
                (self.temperature > 0, "temperature must be > 0"),
                (self.eval_prompts >= 1, "eval_prompts must be >= 1"),
                (self.eval_every >= 1, "eval_every must be >= 1"),
                (self.n_samples >= 0, "n_samples must be >= 0")]

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, with a message naming the field (CLI and app)."""
        errors = [message for ok, message in self.checks() if not ok]
        if errors:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(errors))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@contextlib.contextmanager
def keep_threads():
    """Restore torch's CPU thread count when the block ends (a run sets 1 for tiny models)."""
    before = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(before)


def load_policy_for(config: MethodConfig):
    """(policy, frozen base copy, tokenizer, device), threads set for the model's size."""
    import copy

    from ..models import load_policy

    model, tokenizer = load_policy(config.policy, device=config.device, threads=config.threads)
    device = next(model.parameters()).device  # load_policy set the CPU threads for its size
    base = copy.deepcopy(model).eval()
    for p in base.parameters():
        p.requires_grad_(False)
    return model, base, tokenizer, device


def make_reward_fn(spec: str, config: MethodConfig, tokenizer, device):
    """"toy" (the cached toy reward model), "gold" (the oracle) or a reward-model folder,
    as a function (prompts, responses) -> scores, through moss_lab.ppo.setup.make_reward:
    scored as PPO scores (prompt + response + <eos>, moss_lab.scoring)."""
    from ..ppo.setup import make_reward

    return make_reward(spec, config, tokenizer, device)


def check_finite(name: str, values, where: str) -> None:
    x = torch.as_tensor(values, dtype=torch.float32)
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise NonFinite(f"the {name} returned non-finite values ({bad} of {x.numel()}) at {where}")


# =======================================================================================
# The evaluation: the same for every method
# =======================================================================================
class Evaluator:
    """Responses of the current policy to fixed toy prompts, scored and compared with the base.

    objective/kl is k1 summed over each response's tokens, sum_t log pi(y_t) - log
    pi_base(y_t), on the policy's own samples, averaged over responses: the same estimate
    for every method (PPO logs the same quantity on its rollouts).
    """

    def __init__(self, base, tokenizer, reward_fn, config: MethodConfig):
        self.base, self.tokenizer, self.reward_fn = base, tokenizer, reward_fn
        self.prompts = toyworld.sample_prompts(config.eval_prompts, seed=EVAL_PROMPT_SEED)
        self.max_new_tokens, self.temperature = config.max_new_tokens, config.temperature
        self.seed, self.n_samples = config.seed, config.n_samples

    @torch.no_grad()
    def sample(self, policy) -> dict:
        """Sample one response per evaluation prompt: ids, mask, texts, ended."""
        tok = self.tokenizer
        device = next(policy.parameters()).device
        enc = tok(self.prompts, return_tensors="pt", padding=True)
        prompt_ids, prompt_mask = enc.input_ids.to(device), enc.attention_mask.to(device)
        gen = torch.Generator().manual_seed(self.seed)  # the same draws at every evaluation
        response_ids, mask = sample(policy, prompt_ids, prompt_mask, self.max_new_tokens,
                                    tok.eos_token_id, tok.pad_token_id, self.temperature, 1.0, gen)
        texts, ended = decode_responses(tok, self.prompts, response_ids)
        inputs = sequence_inputs(prompt_ids, prompt_mask, response_ids, mask)
        return {"response_ids": response_ids, "mask": mask, "inputs": inputs,
                "responses": texts, "ended": ended}

    @torch.no_grad()
    def __call__(self, policy) -> tuple[dict, list[dict]]:
        """(metrics, sample rows) of `policy` (restored to its train/eval mode after)."""
        was_training = policy.training
        policy.eval()
        try:
            s = self.sample(policy)
            self.base.to(next(policy.parameters()).device)
            logp, entropy = policy_forward(policy, s["inputs"], s["response_ids"], self.temperature)
            base_logp, _ = policy_forward(self.base, s["inputs"], s["response_ids"],
                                          self.temperature, with_entropy=False)
        finally:
            policy.train(was_training)
        mask = s["mask"]
        scores = torch.as_tensor(self.reward_fn(self.prompts, s["responses"]), dtype=torch.float32)
        check_finite("reward function", scores, "the evaluation")
        gold = [toyworld.gold_score(p, r, e).total
                for p, r, e in zip(self.prompts, s["responses"], s["ended"])]
        metrics = {
            "reward/score": scores.mean().item(), "reward/score_std": scores.std().item(),
            "reward/gold": sum(gold) / len(gold),
            "objective/kl": ((logp - base_logp) * mask).sum(1).mean().item(),
            "objective/entropy": ((entropy * mask).sum() / mask.sum().clamp(min=1)).item(),
            "response/length": mask.sum(1).mean().item(),
            "response/eos_rate": sum(s["ended"]) / len(s["ended"]),
        }
        rows = [{"prompt": p, "response": r, "score": sc, "gold": g, "ended": e}
                for p, r, sc, g, e in zip(self.prompts, s["responses"], scores.tolist(), gold,
                                          s["ended"])][:self.n_samples]
        return metrics, rows


# =======================================================================================
# trl's trainers: CPU arguments, the callback, the run
# =======================================================================================
def trl_args(config: MethodConfig, device, output_dir: str, **kw) -> dict:
    """TrainingArguments for a tiny model (GUIDE: no bf16, no checkpointing, no reports)."""
    return {"output_dir": output_dir, "report_to": "none", "use_cpu": device.type == "cpu",
            "bf16": False, "gradient_checkpointing": False, "save_strategy": "no",
            "logging_steps": config.eval_every, "seed": config.seed, "disable_tqdm": True,
            "lr_scheduler_type": "constant", "dataloader_num_workers": 0, **kw}


# trl's log keys -> ours (the field's names where they mean the same thing); other keys
# get a "trl/" prefix
RENAMES = {"loss": "train/loss", "grad_norm": "train/grad_norm", "learning_rate": "train/lr",
           "reward": "train/reward", "reward_std": "train/reward_std", "kl": "train/kl",
           "entropy": "train/entropy", "clip_ratio/region_mean": "policy/clipfrac",
           "completions/mean_length": "train/response_length",
           "rewards/accuracies": "train/accuracy", "rewards/margins": "train/margin",
           "rewards/chosen": "train/reward_chosen", "rewards/rejected": "train/reward_rejected",
           "epoch": "epoch"}


class LogCallback(TrainerCallback):
    """Forwards trl's logs to `emit(row)` with an evaluation of the policy in each row, and
    asks the trainer to stop when should_stop() says so."""

    def __init__(self, evaluate: Callable, emit: Callable[[dict, list], None],
                 should_stop: Callable[[], bool] | None, episodes_per_step: int):
        self.evaluate, self.emit, self.should_stop = evaluate, emit, should_stop
        self.episodes_per_step = episodes_per_step
        self.stopped = False

    def row(self, step: int, model, logs: dict) -> None:
        tick = time.perf_counter()
        metrics, samples = self.evaluate(model)
        row = {"step": step, "episodes": step * self.episodes_per_step, **metrics}
        for key, value in logs.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row[RENAMES.get(key, f"trl/{key}")] = value
        row["time/eval_s"] = time.perf_counter() - tick
        loss = row.get("train/loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFinite(f"the training loss is {loss} at step {step}")
        self.emit(row, [{"step": step, **s} for s in samples])

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.row(0, model, {})

    def on_step_end(self, args, state, control, **kw):
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            control.should_training_stop = True
        if control.should_training_stop or state.global_step >= state.max_steps:
            control.should_log = True  # a last row (and evaluation) at the end
        return control

    def on_log(self, args, state, control, logs=None, model=None, **kw):
        if logs and "train_runtime" not in logs:  # the end-of-training summary is no step
            self.row(state.global_step, model, logs)


def run_trl(kind: str, config: MethodConfig, make_trainer: Callable, model, base, tokenizer,
            evaluator: Evaluator, run_dir, on_metrics, should_stop, max_steps: int,
            episodes_per_step: int, extra_config: dict | None = None) -> MethodResult:
    """Run `make_trainer(callback, output_dir)` (a trl trainer) and write the run folder.

    Everything that can refuse the run (data, settings) must have been checked before:
    from here on the folder is written.
    """
    import tempfile

    from ..progress import phase

    phase(f"setting up trl's {kind.upper()} trainer and the first evaluation")  # the app's status
    start = time.perf_counter()
    run = RunFolder(run_dir, {"kind": kind, **config.to_dict(), **(extra_config or {})})
    history: list[dict] = []

    def emit(row: dict, samples: list[dict]) -> None:
        row["time/elapsed_s"] = time.perf_counter() - start
        history.append(row)
        run.log(row)
        run.samples(samples)
        if on_metrics is not None:
            on_metrics(row)

    callback = LogCallback(evaluator, emit, should_stop, episodes_per_step)
    status, reason = "finished", f"completed {max_steps} steps"
    trained = model
    try:
        with tempfile.TemporaryDirectory(prefix=f"moss-lab-{kind}-") as scratch:
            trainer = make_trainer(callback, scratch)
            for quiet in (PrinterCallback, ProgressCallback):  # our callback reports
                trainer.remove_callback(quiet)
            trained = trainer.model
            trainer.train()
        if callback.stopped:
            steps = history[-1]["step"] if history else 0
            status, reason = "stopped", f"stopped on request after {steps} steps"
    except NonFinite as err:
        status, reason = "nan", (f"NaN guard: {err}. The run stopped before using it (check "
                                 "the reward function, or try a smaller lr)")
    except Exception as err:  # a crash still leaves a complete record of what happened
        if not is_out_of_memory(err):
            run.write("result.json", {"status": "error", "reason": f"{type(err).__name__}: {err}",
                                      "steps": history[-1]["step"] if history else 0,
                                      "elapsed_s": time.perf_counter() - start})
            raise
        sizes = ", ".join(f"{name} (now {getattr(config, name)})" for name in
                          ("batch_size", "prompts_per_step", "group_size", "max_new_tokens")
                          if hasattr(config, name))
        status, reason = "oom", (f"{out_of_memory_kind(err)} out of memory training "
                                 f"{kind.upper()}: lower {sizes}, or start from a smaller "
                                 "policy. The run stopped there; its metrics so far are kept "
                                 "(no final policy is saved)")
    trained.eval()
    elapsed = time.perf_counter() - start
    if config.save_final and status not in ("nan", "oom"):
        run.save_model(trained, tokenizer, "policy")
    steps = history[-1]["step"] if history else 0
    run.write("result.json", {"status": status, "reason": reason, "steps": steps,
                              "elapsed_s": elapsed, "initial": history[0] if history else None,
                              "final": history[-1] if history else None})
    return MethodResult(status, reason, steps, history, trained, tokenizer, run.path, elapsed)
