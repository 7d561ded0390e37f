"""PPO for RLHF, from scratch, with every PPO-max trick as a switch (Labs 04-08).

    from moss_lab.ppo import PPOConfig, train_ppo
    result = train_ppo(PPOConfig.preset("toy-fast"), run_dir="runs/ppo-1")

Files, in reading order: advantages.py (returns, GAE, whitening, explained variance), losses.py (clipped
surrogate, value loss, entropy), kl.py (KL estimators, beta controllers), rewards.py
(reward shaping, running moments), config.py (PPOConfig), rollout.py (sampling and the
forward passes), setup.py (models and prompts), trainer.py (the loop). The command line is
moss_lab/cli/ppo.py.
"""
from .advantages import discounted_returns, explained_variance, gae, whiten
from .config import PRESETS, PPOConfig
from .kl import KL_ESTIMATORS, AdaptiveKLController, FixedKLController, kl_estimate
from .losses import entropy_from_logits, masked_mean, policy_loss, ptx_loss, value_loss
from .rewards import RunningMoments, shape_rewards
from .rollout import Rollout, sample
from .setup import RewardFunction, gold_reward
from .trainer import PPOResult, train_ppo

__all__ = [
    "discounted_returns", "explained_variance", "gae", "whiten", "PRESETS", "PPOConfig",
    "KL_ESTIMATORS", "AdaptiveKLController", "FixedKLController", "kl_estimate",
    "entropy_from_logits", "masked_mean", "policy_loss", "ptx_loss", "value_loss",
    "RunningMoments", "shape_rewards", "Rollout", "sample", "RewardFunction",
    "gold_reward", "PPOResult", "train_ppo",
]
