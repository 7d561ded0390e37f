"""Every knob of a PPO run, in one dataclass (Lab 06; Lab 07 switches the PPO-max tricks).

Defaults are the `toy-fast` preset: the embedded toy world on a 2-core CPU, with the
PPO-max recipe of MOSS-RLHF ("Secrets of RLHF in Large Language Models, Part I"). Each
PPO-max switch says what MOSS did and what turning it off shows.

    PPOConfig()                                  # toy-fast
    PPOConfig.preset("toy-fast", kl_coef=0.0)    # a preset with overrides (Lab 08: no KL)
    PPOConfig.preset("gpu-small", policy="my-sft", reward="runs/rm-1", prompts="p.jsonl")
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import ClassVar, Literal

from ..configs import Bound, between, check_bounds

SEED_MAX = 2**32 - 1  # numpy's seeds stop here


@dataclass
class PPOConfig:
    # ---- models and data ---------------------------------------------------------------
    policy: str = "toy"
    """The policy to fine-tune: "toy" (the embedded base model), a folder saved with
    save_pretrained, or a Hugging Face hub id. The frozen reference model is a copy of it."""
    reward: str = "toy"
    """The reward model: "toy" (a toy reward model trained once on simulated preferences
    and cached), a folder saved with save_pretrained (moss-lab train-rm), or "gold": an
    ORACLE that rewards with the toy world's true score. "gold" is for teaching only (it
    shows PPO without a proxy); the real pipeline never trains on the gold score."""
    prompts: str = "toy"
    """Where prompts come from: "toy" (drawn from the toy world), or a .txt file (one prompt
    per line) or .jsonl file (a "prompt" field per line)."""
    device: str | None = None
    """"cpu", "cuda" (or "cuda:1", a GPU by number), "mps", or None for the best available."""
    threads: int | None = None
    """CPU threads; None: 1 for tiny models (faster on a busy laptop), torch's default else."""
    seed: int = 0
    """Seeds prompts, sampling, minibatch order and a fresh critic head: same seed, same run.
    (The toy reward model is always the one trained with seed 0, cached.)"""

    # ---- schedule ------------------------------------------------------------------------
    iterations: int = 40
    """PPO iterations. Each: a rollout of `batch_size` responses, then the PPO epochs."""
    batch_size: int = 64
    """Prompts (one response each) per rollout: MOSS's experience buffer (`num_rollouts`)."""
    minibatch_size: int = 32
    """Responses per gradient step."""
    ppo_epochs: int = 2
    """Passes over each rollout. More reuse per sample, more risk of leaving the trust region."""

    # ---- sampling ------------------------------------------------------------------------
    max_new_tokens: int = 20
    """Longest response, in tokens. A response cut here has no <eos> (see missing_eos_penalty)."""
    temperature: float = 1.0
    """Sampling temperature; the policy's probabilities are softmax(logits / temperature)
    in the rollout and in the loss alike."""
    top_p: float = 1.0
    """Nucleus sampling: sample from the smallest set of tokens holding top_p of the mass."""

    # ---- optimisation --------------------------------------------------------------------
    lr: float = 3e-4
    """Adam learning rate of the policy (MOSS, 7B: 5e-7; a 123k-param toy model needs more)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic (MOSS: 3x the policy's)."""
    adam_eps: float = 1e-5
    """Adam epsilon ("The N implementation details of RLHF": 1e-5 rather than 1e-8)."""
    max_grad_norm: float | None = 1.0
    """PPO-max: global gradient clipping; the norm over all of a model's parameters (policy
    and critic each) is scaled down to this. None: off."""

    # ---- PPO -----------------------------------------------------------------------------
    gamma: float = 1.0
    """Discount. 1: the episode is one short response, every token counts the same (MOSS)."""
    lam: float = 0.95
    """GAE lambda: 0 trusts the critic (TD error), 1 trusts the sampled return (MOSS: 0.95)."""
    clip_range: float = 0.2
    """Clipped surrogate epsilon: the ratio pi/pi_old is clipped to [1 - eps, 1 + eps]."""
    value_clip: float | None = 0.2
    """PPO-max: value-loss clipping around the rollout values. None: plain squared error."""
    vf_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.0
    """Entropy bonus weight: loss -= entropy_coef * entropy (MOSS: 0; off in PPO-max)."""

    # ---- reward shaping ------------------------------------------------------------------
    kl_coef: float = 0.05
    """beta, the KL penalty: r_t = -beta * KL_t. 0 invites reward hacking (Lab 08)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"
    """Per-token KL estimate in the penalty: "k1" (log ratio), "k2" or "k3" (see kl.py)."""
    kl_target: float | None = None
    """Adaptive beta: a target for the KL per response (sum over tokens); None: fixed beta."""
    kl_horizon: int = 10_000
    """Adaptive beta: how many responses it takes to correct the KL error."""
    token_level_kl: bool = True
    """PPO-max: the KL penalty on every token. False: the summed KL is subtracted from the
    score at the last token only (a sequence-level penalty, credit assigned by GAE alone)."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the score of a response cut at max_new_tokens. The reward model sees
    every response with <eos> appended, so it cannot tell; without this, rambling is free."""
    reward_norm: bool = True
    """PPO-max: normalise scores with their running mean and std: (s - mean) / std."""
    reward_scaling: bool = False
    """Divide scores by the running std without centring (MOSS's `use_reward_scaling`
    alone). Used only when reward_norm is False."""
    reward_clip: float | None = 5.0
    """PPO-max: clip the (normalised) score to [-reward_clip, reward_clip]. None: off."""
    advantage_norm: bool = True
    """Whiten advantages over the rollout (mean 0, std 1). Not in PPO-max's list but
    standard; MOSS: `use_advantage_norm`."""
    advantage_clip: float | None = None
    """Clip whitened advantages to [-c, c] (MOSS: `advantage_clip` 0.5, off by default)."""

    # ---- critic --------------------------------------------------------------------------
    critic_init: Literal["reward", "policy"] = "reward"
    """PPO-max: "reward" initialises the critic from the reward model (it already knows
    what a good response looks like); "policy" from the policy's body with a fresh head.
    "reward" needs a reward model that shares the policy's tokenizer."""
    critic_pretrain_steps: int = 2
    """PPO-max: rollouts used to train the critic alone before PPO starts, so that the
    first advantages are not noise."""

    # ---- pretraining loss (PPO-ptx) --------------------------------------------------------
    ptx_coef: float = 0.0
    """Weight of the language-model loss on base-model data (toy corpus); 0: off.
    Pays the alignment tax down; MOSS's `ppo_pretrain_loss_weight`."""
    ptx_batch_size: int = 16
    """Base-model texts per minibatch for the ptx loss."""

    # ---- precision and memory (real models on a GPU; memory.py estimates the cost) ----------
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """"bf16": forwards under bf16 autocast, the frozen reference and reward model stored in
    bf16; trained weights, Adam states, log-probs and losses stay fp32. "auto": bf16 on a
    CUDA GPU that supports it, fp32 elsewhere. "fp32": everything in fp32."""
    gradient_checkpointing: bool = False
    """Keep only each layer's input during the update and recompute the rest in the backward
    pass: activation memory / ~layers, for ~30% more update time (policy and critic)."""
    lora_rank: int = 0
    """LoRA rank r of the policy (peft): train W + (lora_alpha / r) B A with B (d_out x r),
    A (r x d_in) on the lora_targets layers, the rest frozen. 0: full fine-tuning. The
    saved policy has the adapters merged in: a plain model folder."""
    lora_alpha: float = 16.0
    """LoRA scale numerator: the update is (lora_alpha / lora_rank) B A."""
    lora_targets: str = "auto"
    """Comma-separated names of the policy's layers that get LoRA adapters, e.g.
    "q_proj,v_proj". "auto": the attention projections (GPT-2's c_attn; q_proj, k_proj,
    v_proj, o_proj of Llama, Qwen2, Mistral)."""

    # ---- logging and saving --------------------------------------------------------------
    sample_every: int = 5
    """Write a few responses to samples.jsonl every this many iterations (and the first)."""
    n_samples: int = 4
    """Responses written each time."""
    save_every: int = 0
    """Save the policy to checkpoints/iter-N every this many iterations; 0: only at the end."""
    save_final: bool = True
    """Save the final policy (and tokenizer) to <run_dir>/policy with save_pretrained."""

    # The range of every numeric field: what a class server can live with. One place:
    # __post_init__ checks it (library, CLI, app) and the app's forms take their
    # minimum/maximum from it (moss_lab.configs). None stays allowed where the type says so.
    BOUNDS: ClassVar[dict[str, Bound]] = {
        "threads": between(1, 256), "seed": between(0, SEED_MAX),
        "iterations": between(0, 100_000), "batch_size": between(1, 4096),
        "minibatch_size": between(1, 4096), "ppo_epochs": between(1, 100),
        # the model's context window minus the prompt is checked when it is loaded (setup.py)
        "max_new_tokens": between(1, 4096),
        "temperature": between(0, 100, lo_open=True), "top_p": between(0, 1, lo_open=True),
        "lr": between(0, 1, lo_open=True), "critic_lr": between(0, 1, lo_open=True),
        "adam_eps": between(0, 1, lo_open=True),
        "max_grad_norm": between(0, 1e6, lo_open=True),
        "gamma": between(0, 1), "lam": between(0, 1),
        "clip_range": between(0, 10, lo_open=True), "value_clip": between(0, 1e6, lo_open=True),
        "vf_coef": between(0, 1000), "entropy_coef": between(0, 100),
        "kl_coef": between(0, 100), "kl_target": between(0, 1e6, lo_open=True),
        "kl_horizon": between(1, 10**9), "missing_eos_penalty": between(-100, 100),
        "reward_clip": between(0, 1e6, lo_open=True),
        "advantage_clip": between(0, 1e6, lo_open=True),
        "critic_pretrain_steps": between(0, 10_000),
        "ptx_coef": between(0, 100), "ptx_batch_size": between(1, 4096),
        "sample_every": between(0, 100_000), "n_samples": between(0, 4096),
        "save_every": between(0, 100_000),
        "lora_rank": between(0, 4096), "lora_alpha": between(0, 1e6, lo_open=True),
    }

    def __post_init__(self) -> None:
        """Refuse settings that cannot work, with a message naming the field (CLI and app)."""
        checks = [
            (self.kl_estimator in ("k1", "k2", "k3"), "kl_estimator must be k1, k2 or k3"),
            (self.critic_init in ("reward", "policy"), "critic_init must be 'reward' or 'policy'"),
            (self.precision in ("auto", "fp32", "bf16"), "precision must be auto, fp32 or bf16"),
            (bool(str(self.lora_targets).strip(" ,")),
             "lora_targets must name layers (e.g. 'q_proj,v_proj') or be 'auto'"),
        ]
        errors = check_bounds(self) + [message for ok, message in checks if not ok]
        if errors:
            raise ValueError("invalid PPO config: " + "; ".join(errors))

    def missing_inputs(self, given: tuple[str, ...] = ()) -> list[str]:
        """What this config still needs before it can run, each with how to get it: a
        real-model preset (gpu-small) leaves policy, reward and prompts empty on purpose.
        `given`: inputs passed another way (train_ppo's policy= and reward_model=)."""
        needs = {
            "policy": "a policy (Policy; --policy): your SFT model's folder, saved with "
                      "save_pretrained, or a Hugging Face hub id such as gpt2",
            "reward": "a reward model (Reward; --reward): the model/ folder of a reward run; "
                      "train one on your preference pairs with `moss-lab train-rm --hh "
                      "pairs.jsonl --base <the policy's folder>`",
            "prompts": "prompts (Prompts; --prompts): a .txt file with one prompt per line, "
                       "or a .jsonl file with a \"prompt\" field per line",
        }
        return [how for name, how in needs.items() if name not in given
                and isinstance(getattr(self, name), str) and not getattr(self, name).strip()]

    def check_inputs(self, given: tuple[str, ...] = ()) -> None:
        """ValueError naming every missing input (policy, reward model, prompts)."""
        missing = self.missing_inputs(given)
        if missing:
            raise ValueError("this PPO run is missing " + "; ".join(missing))

    # ---- helpers -------------------------------------------------------------------------
    @classmethod
    def preset(cls, name: str, **overrides) -> "PPOConfig":
        """A named preset with some fields replaced."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> "PPOConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PPOConfig fields: {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, PPOConfig] = {
    # The embedded toy world on a laptop CPU: seconds per iteration.
    "toy-fast": PPOConfig(),
    # A ~100-500M Hugging Face model on one 24-80 GB GPU. No defaults for the inputs: the
    # policy should be your SFT model, the reward model one trained on its outputs
    # (moss-lab train-rm --base <policy>), the prompts a file (missing_inputs() says so).
    # Memory (moss_lab.memory, prompts of 256 tokens; measured formulas, not a promise):
    # GPT-2 124M ~8 GiB, GPT-2 medium 355M ~17 GiB, Qwen2.5-0.5B ~29 GiB (its 152k-word
    # vocabulary makes the rollout's logits the largest part: lower batch_size on 24 GB).
    # bf16 autocast ("auto"); gradient checkpointing on, as it cuts the update's
    # activations ~6x (355M: 31 -> 17 GiB) for ~30% more update time; full fine-tuning, not
    # LoRA, which is PPO's reference recipe, and LoRA would save only the policy's
    # gradients and Adam states (~3-5 GiB here) while the critic stays full (--lora-rank 16
    # when that is what is missing).
    "gpu-small": PPOConfig(
        policy="", reward="", prompts="", device="cuda", iterations=200,
        batch_size=64, minibatch_size=16, ppo_epochs=2, max_new_tokens=64,
        temperature=1.0, lr=1e-6, critic_lr=3e-6, kl_coef=0.05, critic_pretrain_steps=5,
        missing_eos_penalty=1.0, sample_every=10, save_every=50,
        precision="auto", gradient_checkpointing=True, lora_rank=0,
    ),
}
