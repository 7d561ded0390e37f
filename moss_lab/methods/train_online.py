"""What GRPO and RLOO runs share (Lab 10): groups of samples per prompt, scored by a reward
function, trained through trl's GRPOTrainer or RLOOTrainer.

    prompts      toy prompts in blocks of equal token length: trl 1.16 computes training
                 log-probs without position ids, so a left-padded GPT-2 prompt would see
                 shifted positions (up to 0.43 nats per token); a batch of equal-length
                 prompts has no padding at all
    reward       "toy" (the toy reward model), "gold" (the oracle, teaching only) or a
                 reward-model folder, scored as PPO scores (prompt + response + <eos>),
                 minus missing_eos_penalty for a response cut before <eos>, as in PPO
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from .. import toyworld
from ..sampling import response_text
from .training import MethodConfig, MethodError, check_finite


@dataclass
class OnlineConfig(MethodConfig):
    """The fields GRPO and RLOO share."""

    reward: str = "toy"
    """The reward function: "toy" (the cached toy reward model), a reward-model folder
    (moss-lab train-rm), or "gold": an ORACLE that rewards with the toy world's true
    score, for teaching only (it shows the method without a proxy)."""
    steps: int = 30
    """Optimiser steps; each samples `group_size` responses to `prompts_per_step` prompts."""
    prompts_per_step: int = 8
    """Distinct prompts per step (all of the same token length, see the module doc)."""
    group_size: int = 8
    """Responses sampled per prompt (trl's num_generations): the group whose rewards make
    each other's baseline. At least 2."""
    lr: float = 3e-4
    """Adam learning rate (trl's default 1e-6 is for real models; a tiny one needs more)."""
    adam_eps: float = 1e-5
    """Adam epsilon ("The N implementation details of RLHF": 1e-5)."""
    max_grad_norm: float = 1.0
    """Global gradient clipping."""
    epsilon: float = 0.2
    """Clip range of the importance ratio."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the reward of a response cut at max_new_tokens (as in PPO): the
    reward model sees every response with <eos> appended, so it cannot tell."""

    def checks(self) -> list[tuple[bool, str]]:
        return super().checks() + [
            (self.steps >= 1, "steps must be >= 1"),
            (self.prompts_per_step >= 1, "prompts_per_step must be >= 1"),
            (self.group_size >= 2, ("group_size must be >= 2: each response's baseline comes "
                                    "from the other responses of its group, and a group of 1 "
                                    "has none")),
            (self.lr > 0, "lr must be > 0"), (self.epsilon > 0, "epsilon must be > 0"),
            (self.max_grad_norm > 0, "max_grad_norm must be > 0")]


def prompt_blocks(tokenizer, block: int, n_blocks: int, seed: int) -> list[str]:
    """n_blocks * block toy prompts: each consecutive block of `block` has one token length."""
    rng = random.Random(seed)
    by_length: dict[int, list[str]] = {}
    for q in toyworld.QUESTIONS:
        for t in toyworld.TOPICS:
            p = toyworld.format_prompt(q.format(t=t))
            by_length.setdefault(len(tokenizer(p).input_ids), []).append(p)
    lengths = sorted(by_length)
    weights = [len(by_length[n]) for n in lengths]  # uniform over prompts, as sample_prompts
    out: list[str] = []
    for _ in range(n_blocks):
        bucket = by_length[rng.choices(lengths, weights)[0]]
        out += [rng.choice(bucket) for _ in range(block)]
    return out


class TrlReward:
    """A trl reward function: scores trl's decoded completions (no <eos>) like PPO does and
    stops the run on a non-finite score."""

    __name__ = "reward"

    def __init__(self, reward_fn, eos_id: int, missing_eos_penalty: float):
        self.reward_fn, self.eos_id, self.penalty = reward_fn, eos_id, missing_eos_penalty
        self.calls = 0

    def __call__(self, prompts, completions, completion_ids=None, **kwargs) -> list[float]:
        self.calls += 1
        responses = [response_text(p, c) for p, c in zip(prompts, completions)]
        scores = [float(s) for s in self.reward_fn(list(prompts), responses)]
        check_finite("reward function", scores, f"training step {self.calls}")
        if completion_ids is None:
            return scores
        return [s - self.penalty * (self.eos_id not in ids)
                for s, ids in zip(scores, completion_ids)]


def train_online(kind: str, config: OnlineConfig, trl_config_cls, trainer_cls, method_args: dict,
                 run_dir=None, on_metrics=None, should_stop=None, reward=None):
    """A GRPO or RLOO run through trl (see train_grpo, train_rloo). `reward`: a callable
    (prompts, responses) -> scores used instead of config.reward."""
    from .training import keep_threads

    with keep_threads():
        return _train_online(kind, config, trl_config_cls, trainer_cls, method_args, run_dir,
                             on_metrics, should_stop, reward)


def _train_online(kind, config, trl_config_cls, trainer_cls, method_args, run_dir, on_metrics,
                  should_stop, reward):
    from datasets import Dataset

    from .training import Evaluator, load_policy_for, make_reward_fn, run_trl, trl_args

    if reward is None and config.reward not in ("toy", "gold") and not Path(config.reward).is_dir():
        raise MethodError(f"reward {config.reward!r} not found: give 'toy', 'gold' or a "
                          "reward-model folder (moss-lab train-rm)")
    model, base, tokenizer, device = load_policy_for(config)
    reward_fn = make_reward_fn(reward or config.reward, config, tokenizer, device)
    evaluator = Evaluator(base, tokenizer, reward_fn, config)
    prompts = prompt_blocks(tokenizer, config.prompts_per_step, config.steps, config.seed)
    dataset = Dataset.from_dict({"prompt": prompts})
    trl_reward = TrlReward(reward_fn, tokenizer.eos_token_id, config.missing_eos_penalty)
    batch = config.prompts_per_step * config.group_size

    def make_trainer(callback, output_dir):
        args = trl_config_cls(**trl_args(
            config, device, output_dir, max_steps=config.steps, learning_rate=config.lr,
            adam_epsilon=config.adam_eps, max_grad_norm=config.max_grad_norm,
            per_device_train_batch_size=batch, num_generations=config.group_size,
            max_completion_length=config.max_new_tokens, temperature=config.temperature,
            shuffle_dataset=False, epsilon=config.epsilon, **method_args))
        return trainer_cls(model=model, reward_funcs=trl_reward, args=args,
                           train_dataset=dataset, processing_class=tokenizer,
                           callbacks=[callback])

    name = getattr(reward, "__name__", type(reward).__name__)
    custom = {"reward": f"custom: {name}"} if reward is not None else None
    return run_trl(kind, config, make_trainer, model, base, tokenizer, evaluator, run_dir,
                   on_metrics, should_stop, config.steps, batch, custom)
