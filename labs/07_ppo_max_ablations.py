# %% [markdown]
# # Lab 07 - PPO-max ablations
#
# MOSS-RLHF ("Secrets of RLHF in Large Language Models, Part I") found that vanilla PPO on
# language models is fragile, and collected the implementation details that make it
# stable into **PPO-max**. Every one of them is a switch in `PPOConfig`, on by default:
#
# | trick | `PPOConfig` field | what it does |
# |---|---|---|
# | token-level KL penalty | `kl_coef`, `token_level_kl` | $-\beta(\log\pi - \log\pi_\text{ref})$ on every token |
# | reward normalisation + clipping | `reward_norm`, `reward_clip` | running mean/std of the scores; clip to ±5 |
# | value-loss clipping | `value_clip` | the value loss stops pulling the critic more than 0.2 away from its rollout values |
# | critic from the reward model + pre-training | `critic_init`, `critic_pretrain_steps` | the first advantages are not noise |
# | global gradient clipping | `max_grad_norm` | no single step is huge |
#
# One more switch is on by default though it is not in PPO-max's list: **advantage
# whitening** (`advantage_norm`; MOSS: `use_advantage_norm`) whitens the advantages over the
# rollout (mean 0, std 1), so the step size does not depend on the reward scale. It is
# standard in PPO implementations.
#
# This lab switches them off one at a time, with short runs of the toy world, and compares
# the curves. MOSS's headline: without the KL penalty the policy drifts into **pattern
# collapse** (reward up, quality and diversity down); reward normalisation and clipping keep
# training stable when the reward scale is off.
#
# One caution before the numbers: each run here is **one seed, 25 iterations**. How much
# do seeds alone move the result? We ran PPO-max with seeds 0-3: the final gold score
# (mean of the last 5 iterations) ranged from 1.45 to 1.68 and the best from 1.66 to 1.95.
# Differences smaller than about 0.25 between two runs below are noise. (The figures in
# this lab's text are from our run; yours may differ a little.)

# %%
import copy
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
import matplotlib.pyplot as plt
import torch
import transformers

from moss_lab.models import load_policy
from moss_lab.ppo import PPOConfig, train_ppo
from moss_lab.ppo.toy import toy_reward_model_dir
from moss_lab.reward import load_reward_model

transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)
plt.rcParams["figure.constrained_layout.use"] = True
RUNS = Path(tempfile.mkdtemp(prefix="moss-lab-07-"))  # run folders go here, not in the repo
policy = load_policy("toy")                            # shared by all runs (each copies it)
reward_model = load_reward_model(toy_reward_model_dir())  # (model, tokenizer), cached


# %% [markdown]
# ## The ablations
#
# * **PPO-max** - the `toy-fast` preset as it is.
# * **no KL penalty** - `kl_coef=0`.
# * **no reward norm/clip, RM x10** - the same reward model with its scores multiplied by
#   10 (a reward model on a different scale, as happens when you swap one in), with
#   `reward_norm=False, reward_clip=None`. With normalisation on, the x10 would change
#   nothing: scores are divided by their running std.
# * **no value clip** - `value_clip=None`.
# * **fresh critic, no pre-training** - `critic_init="policy"` (the policy's body with a
#   random value head) and `critic_pretrain_steps=0`.

# %%
def scaled(rm_and_tokenizer, factor):
    """A copy of a reward model whose scores are `factor` times larger (its linear head)."""
    model, tokenizer = rm_and_tokenizer
    model = copy.deepcopy(model)
    with torch.no_grad():
        for p in model.score.parameters():
            p.mul_(factor)
    return model, tokenizer


ITERATIONS = 25
ABLATIONS = {
    "PPO-max": ({}, reward_model),
    "no KL penalty": ({"kl_coef": 0.0}, reward_model),
    "no reward norm/clip, RM x10": ({"reward_norm": False, "reward_clip": None},
                                    scaled(reward_model, 10.0)),
    "no value clip": ({"value_clip": None}, reward_model),
    "fresh critic, no pre-training": ({"critic_init": "policy", "critic_pretrain_steps": 0},
                                      reward_model),
}

results = {}
for name, (overrides, rm) in ABLATIONS.items():
    config = PPOConfig.preset("toy-fast", iterations=ITERATIONS, save_final=False, **overrides)
    slug = name.replace(" ", "-").replace("/", "-").replace(",", "")
    results[name] = train_ppo(config, run_dir=RUNS / slug, policy=policy, reward_model=rm)
    print(f"{name:32s} {results[name].status:9s} {results[name].elapsed_s:5.1f} s")

# %% [markdown]
# ## The curves

# %%
PANELS = [("reward/gold", "gold score (hidden)"), ("objective/kl", "KL to reference"),
          ("objective/entropy", "entropy (nats/token)"), ("response/length", "length (tokens)")]
fig, axes = plt.subplots(1, len(PANELS), figsize=(16, 3.4))
for name, result in results.items():
    x = [r["iteration"] for r in result.history]
    style = {"lw": 2.5, "color": "k"} if name == "PPO-max" else {"lw": 1.3}
    for ax, (key, title) in zip(axes, PANELS):
        ax.plot(x, [r[key] for r in result.history], label=name, **style)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("iteration")
axes[1].set_yscale("symlog")
axes[0].legend(fontsize=8)
plt.show()


# %% [markdown]
# ## The table
#
# Final figures are averaged over the last 5 iterations (one iteration is noisy).

# %%
def last(result, key, n=5):
    rows = result.history[-n:]
    return sum(r[key] for r in rows) / len(rows)


print(f"{'run':32s} {'gold best':>9} {'gold final':>10} {'KL final':>8} {'entropy':>8} "
      f"{'length':>7} {'s/iter':>7}")
for name, result in results.items():
    h = result.history
    print(f"{name:32s} {max(r['reward/gold'] for r in h):9.2f} {last(result, 'reward/gold'):10.2f} "
          f"{last(result, 'objective/kl'):8.1f} {last(result, 'objective/entropy'):8.2f} "
          f"{last(result, 'response/length'):7.1f} {result.elapsed_s / len(h):7.2f}")

# %% [markdown]
# ## What to read in them
#
# * **No KL penalty**: the gold score climbs with the others at first, then falls in the
#   second half (in our run from about 1.7 to 0.8) while the KL keeps growing, to about
#   twice PPO-max's (note the log scale). Nothing holds the policy near the text the
#   reward model was trained on, and it drifts into what the reward model over-scores
#   (lab 08 shows the text). This is the start of MOSS's pattern collapse, and the
#   subject of lab 08.
# * **Reward scale without normalisation**: with the reward model's scores x10 and no
#   normalisation or clipping, the run gets the early gain but then slides down (in our
#   run it ended lowest of all) while its KL grows as fast as the no-KL run's. Two reasons: the KL penalty (still $\beta = 0.05$ per
#   nat) is now ten times weaker relative to the score, and the critic must predict
#   returns ten times larger, while value clipping lets it move only 0.2 per update, so
#   the advantages are mostly critic error. With `reward_norm` on, the same x10 reward
#   model would train like the original: scores are divided by their running std. That
#   invariance is the point of normalising.
# * **Value clipping** makes no difference here beyond the seed noise: a 123k-parameter
#   critic fitted on 64 responses per iteration does not take wild steps.
# * **A fresh critic without pre-training** starts with values that are noise, so the first
#   advantages are mostly noise too; in our run it started lowest and lagged PPO-max at
#   times, but ended within the seed spread. MOSS saw the critic tricks matter more on 7B
#   models, where a bad critic update is expensive to undo.
#
# PPO-max does not make every curve go up faster; it makes runs *predictable*: the same
# recipe works across reward scales and seeds, and the KL stays where you put it.
#
# **Try it yourself**: ablate `advantage_norm=False`, `max_grad_norm=None`,
# `token_level_kl=False` (the KL subtracted once from the final score), or turn on the
# tricks PPO-max left out: `entropy_coef=0.01`, `ptx_coef=0.5`, `advantage_clip=0.5`. Use
# 2-3 seeds (`seed=...`) before believing a difference.
