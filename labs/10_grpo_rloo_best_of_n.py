# %% [markdown]
# # Lab 10 - GRPO, RLOO and best-of-n
#
# PPO (labs 04-07) trains **two** networks: the policy and a critic $V_\psi$ that predicts
# the return before each token, so that GAE can turn one score at the end of a response
# into an advantage per token. In real RLHF the critic is as large as the policy: twice
# the memory, twice the training, and one more thing that can go wrong (lab 07).
#
# When the reward is one number per response, there is a cheaper baseline: **sample
# several responses to the same prompt** and compare them with each other. This lab
# builds the two critic-free methods that do so, and the one method with no training at
# all:
#
# 1. **GRPO** (Shao et al. 2024, DeepSeekMath): a group of $G$ responses per prompt; the
#    advantage of each is its reward standardised within the group.
# 2. **RLOO** (Kool et al. 2019; Ahmadian et al. 2024): the baseline of each response is
#    the mean reward of the *other* $k - 1$.
# 3. **Best-of-$n$**: sample $n$ responses, keep the one the reward model likes best. No
#    gradient step, yet a strong baseline, with a KL to the base model known in closed form.
#
# Then the question Gao et al. (2022) asked: for the same distance from the base model,
# which method buys the most **gold** score? One plot with PPO, DPO (lab 09), GRPO, RLOO
# and best-of-$n$, gold against KL, and the wall time of each.
#
# Three exercises: GRPO's group advantages, RLOO's leave-one-out baseline and the KL of
# best-of-$n$, each checked against `moss_lab.methods`.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - compute GRPO's group-normalised advantages and RLOO's leave-one-out baseline;
# - compute the KL of best-of-$n$;
# - compare PPO, DPO, GRPO, RLOO and best-of-$n$ by gold score per unit of KL and by wall time.
#
# **Time:** about 50 minutes of reading, exercises and the quiz; the code runs in a few minutes.
#
# After each cell that measures or plots something, a **What you should see** note gives the values to expect: exact ones where nothing is random, and otherwise the range we measured over three seeds (0-2, the notebook's is 0) with each method's `seed`. The runs are short and a gold score is a mean over 64 prompts, so the ranges are wide: a run of yours can land a little outside them.

# %%
import math
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch

from moss_lab import checks_methods
from moss_lab.methods.train_best_of_n import BestOfNConfig, train_best_of_n
from moss_lab.methods.train_dpo import DPOTrainConfig, train_dpo
from moss_lab.methods.train_grpo import GRPOTrainConfig, train_grpo
from moss_lab.methods.train_rloo import RLOOTrainConfig, train_rloo
from moss_lab.methods.training import Evaluator, MethodConfig, make_reward_fn
from moss_lab.models import load_policy
from moss_lab.notebook import quiet_notebook
from moss_lab.ppo import PPOConfig, train_ppo

quiet_notebook()  # no progress bars or deprecation notes between the lessons
torch.set_num_threads(1)  # a 123k-parameter model: one thread is fastest on a busy laptop
RUNS = Path(tempfile.mkdtemp(prefix="moss-lab-10-"))  # run folders go here, not in the repo

# %% [markdown]
# ## 1. A baseline without a critic
#
# With one reward $r(x, y)$ per response (no per-token reward: the KL term, if any, is
# added to $r$ or to the loss), the policy gradient of lab 04 is
#
# $$\nabla_\theta J = \mathbb{E}_{x}\,\mathbb{E}_{y \sim \pi_\theta(\cdot\mid x)}
#   \big[(r(x, y) - b(x))\,\nabla_\theta \log \pi_\theta(y \mid x)\big],$$
#
# unbiased for **any** baseline $b$ that does not depend on the response $y$ (because
# $\mathbb{E}_y[\nabla \log \pi(y\mid x)] = 0$). The best constant baseline is close to
# the expected reward of the prompt, $b(x) \approx \mathbb{E}_{y}[r(x, y)]$: exactly what
# PPO's critic learns to predict at the first token. Instead of learning it, estimate it:
# sample $k$ responses $y_1, \dots, y_k$ to the same prompt and use their rewards.
#
# ### GRPO: standardise within the group
#
# $$A_i = \frac{r_i - \operatorname{mean}(r_1, \dots, r_G)}{\operatorname{std}(r_1, \dots, r_G) + \varepsilon}$$
#
# The same $A_i$ for every token of response $i$; then PPO's clipped surrogate per token
# (lab 04), and a $k_3$ KL to the reference added to the **loss**, weighted by $\beta$
# (lab 06's estimator; PPO puts its KL in the reward instead). The std is the unbiased one
# (divides by $G - 1$, as trl does) and $\varepsilon = 10^{-4}$. Two things to notice: a
# group whose rewards are all equal gets $A = 0$ (no signal: every answer was as good as
# the others), and dividing by the std gives prompts with a small spread of rewards a
# larger weight (Dr. GRPO, Liu et al. 2025, drops the division for that reason).
#
# ### Exercise 1 - GRPO's group advantages
#
# `rewards` has shape `(B,)` with `B = n_groups * group_size`: the samples of a prompt are
# **adjacent** (trl's layout). Return the advantages, shape `(B,)`.

# %%
def group_advantages(rewards, group_size):
    """(r - mean of the group) / (unbiased std of the group + 1e-4), shape (B,)."""
    ### BEGIN SOLUTION
    grouped = rewards.view(-1, group_size)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.std(dim=1, keepdim=True)
    return ((grouped - mean) / (std + 1e-4)).view(-1)
    ### END SOLUTION


# %%
group_ok = checks_methods.check_group_advantages(group_advantages)

# %% [markdown]
# ### RLOO: leave one out
#
# GRPO's mean includes $r_i$ itself, so its baseline depends a little on $y_i$ (its
# gradient estimate is shrunk by $(G-1)/G$ and, with the std, no longer an exact policy
# gradient). RLOO takes the mean of the **others**:
#
# $$b_i = \frac{1}{k - 1}\sum_{j \ne i} r_j, \qquad A_i = r_i - b_i = \frac{k}{k-1}\,\big(r_i - \operatorname{mean}(r)\big).$$
#
# $b_i$ depends only on the other, independent samples, so the gradient is unbiased with
# any $k \ge 2$. RLOO treats the whole response as one action (one importance ratio per
# sequence) and puts the KL penalty in the reward, like PPO: $r_i = s_i - \beta \sum_t
# (\log\pi - \log\pi_\text{ref})$.
#
# ### Exercise 2 - the leave-one-out baseline
#
# Same layout: `rewards` `(B,)`, the `k` samples of a prompt adjacent. Return the
# baselines $b_i$, shape `(B,)`.

# %%
def leave_one_out_baseline(rewards, k):
    """The mean of the other k - 1 rewards of each sample's group, shape (B,)."""
    ### BEGIN SOLUTION
    grouped = rewards.view(-1, k)
    return ((grouped.sum(dim=1, keepdim=True) - grouped) / (k - 1)).view(-1)
    ### END SOLUTION


# %%
loo_ok = checks_methods.check_leave_one_out_baseline(leave_one_out_baseline)

# %% [markdown]
# Side by side on two groups of 4: 0/1 rewards (a verifier's, as in DeepSeekMath) where
# one answer of four is right, and a group where all four are right. (Your functions once
# their checks pass, the library's until then.)

# %%
from moss_lab.methods.grpo import group_advantages as library_group_advantages
from moss_lab.methods.rloo import leave_one_out_advantages

grpo_fn = checks_methods.use_if_passed(group_advantages, group_ok, library_group_advantages)
loo_fn = checks_methods.use_if_passed(
    leave_one_out_baseline, loo_ok,
    lambda r, k: r - leave_one_out_advantages(r, k))  # b = r - A
rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
print("rewards         ", rewards.tolist())
print("GRPO advantage  ", [round(a, 3) for a in grpo_fn(rewards, 4).tolist()])
print("RLOO baseline   ", [round(b, 3) for b in loo_fn(rewards, 4).tolist()])
print("RLOO advantage  ", [round(a, 3) for a in (rewards - loo_fn(rewards, 4)).tolist()])

# %% [markdown]
# **What you should see** (exact, no randomness): GRPO advantages `[1.5, -0.5, -0.5, -0.5, 0.0, 0.0, 0.0, 0.0]`, RLOO baselines `[0.0, 0.333, 0.333, 0.333, 1.0, 1.0, 1.0, 1.0]` and RLOO advantages `[1.0, -0.333, -0.333, -0.333, 0.0, 0.0, 0.0, 0.0]`.

# %% [markdown]
# The right answer gets $+1.5$ from GRPO ($0.75 / 0.5$) and $+1$ from RLOO ($1 - 0$); the
# wrong ones $-0.5$ and $-1/3$. Both advantages sum to zero within a group, both are zero
# for the group where every answer was right. They differ in scale (GRPO divides by the
# group's std, RLOO multiplies the centred reward by $k/(k-1)$), which Adam's step size
# mostly absorbs.
#
# ## 2. GRPO and RLOO on the toy world
#
# The same task as PPO in lab 06: the toy base model, the cached toy reward model as the
# reward (with the missing-`<eos>` penalty of PPO), 8 prompts per step and 8 responses per
# prompt (64 responses per step, like PPO's batch), through trl's `GRPOTrainer` and
# `RLOOTrainer` (`moss_lab.methods.train_grpo` / `train_rloo`). Every 2 steps, the same
# **evaluation** for every method in this lab: one response to each of 64 fixed prompts,
# its gold score (`reward/gold`) and its KL to the base model (`objective/kl`: $k_1$
# summed over the response's tokens, averaged, on the policy's own samples).

# %%
STEPS = 20  # short runs: the defaults (30 steps) take ~30 s each on a laptop
timings, results = {}, {}


def timed(name, fn, *args, **kwargs):
    """Run fn, keep its result and its wall time under `name`."""
    start = time.perf_counter()
    results[name] = fn(*args, **kwargs)
    timings[name] = time.perf_counter() - start
    return results[name]


def report(name):
    h = results[name].history
    best = max(h, key=lambda r: r["reward/gold"])
    print(f"{name}: gold {h[0]['reward/gold']:+.2f} -> best {best['reward/gold']:+.2f} "
          f"(KL {best['objective/kl']:.2f}), last {h[-1]['reward/gold']:+.2f} "
          f"(KL {h[-1]['objective/kl']:.2f}); {timings[name]:.0f} s")


common = {"eval_every": 2, "save_final": False}
timed("GRPO", train_grpo, GRPOTrainConfig(steps=STEPS, **common), run_dir=RUNS / "grpo")
report("GRPO")
timed("RLOO", train_rloo, RLOOTrainConfig(steps=STEPS, **common), run_dir=RUNS / "rloo")
report("RLOO")

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for name in ("GRPO", "RLOO"):
    h = results[name].history
    steps = [r["step"] for r in h]
    axes[0].plot(steps, [r["reward/score"] for r in h], "o-", ms=3, label=name)
    axes[1].plot(steps, [r["reward/gold"] for r in h], "o-", ms=3, label=name)
    axes[2].plot(steps, [r["objective/kl"] for r in h], "o-", ms=3, label=name)
for ax, title in zip(axes, ("reward-model score (optimised)", "gold score (hidden)",
                            "KL to the base model (nats)")):
    ax.set_title(title)
    ax.set_xlabel("optimiser step")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # steps are whole numbers
    ax.legend()
plt.show()

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): with seed 0, `GRPO: gold -1.96 -> best +1.14 (KL 2.43), last +1.14 (KL 2.43)` and `RLOO: gold -1.96 -> best +0.98 (KL 2.14), last +0.98 (KL 2.14)`. Over the seeds both start at the same gold, -2.0 to -1.3 (the evaluation's base-model samples depend on the seed), and end the 20 steps at +1.1 to +1.2 (GRPO) and +1.0 to +1.4 (RLOO), at a KL of 2.2-2.5 and 2.1-2.3 nats; the reward-model score rises from 1.1-1.3 to 3.0-3.4. Which of the two ends higher changes with the seed. The times depend on the machine (10-35 s each here, on a busy one).

# %% [markdown]
# In our runs: the two curves almost on top of each other.
# Both raise the gold score from about $-2$ at step 0 to about $+1$ within 20 steps
# (+1.1 GRPO, +1.0 RLOO), the reward-model score from about 1.1 to 3.1, and the KL to the
# base model to 2.1-2.4 nats, growing steadily from step 4. GRPO's KL term (in the loss,
# $\beta = 0.04$) and RLOO's (in the reward, $\beta = 0.05$) are both weak at this scale:
# what keeps the runs near the base model is mostly that they are short. Each took 8-12 s
# here, more on a busy machine.
#
# ## 3. Best-of-$n$
#
# No training: for each prompt, sample $n$ responses from the base model and keep the one
# the reward model scores highest. How far is this "policy" from the base model? Let $F$
# be the distribution function of the reward under $\pi$ (assume no ties). The best of $n$
# independent draws has the distribution $F^n$, so a response $y$ whose reward sits at
# quantile $u = F(r(y))$ is chosen with density $n u^{n-1}$ relative to $\pi$:
#
# $$\mathrm{KL}(\pi_{\text{bo}n}\,\|\,\pi) = \int_0^1 n u^{n-1} \log\!\big(n u^{n-1}\big)\,du
#   = \log n - \frac{n - 1}{n}.$$
#
# (Stiennon et al. 2020; Beirami et al. 2024 show it is an upper bound when responses
# repeat, as the toy model's often do.)
#
# ### Exercise 3 - the KL of best-of-$n$
#
# Return $\log n - (n - 1)/n$ in nats, for an integer $n \ge 1$.

# %%
def best_of_n_kl(n):
    """The analytic KL of best-of-n to the policy it samples from, in nats."""
    ### BEGIN SOLUTION
    return math.log(n) - (n - 1) / n
    ### END SOLUTION


# %%
bon_kl_ok = checks_methods.check_best_of_n_kl(best_of_n_kl)

# %% [markdown]
# The ladder $n = 1, 2, 4, \dots, 32$ on the same 64 evaluation prompts. Each prompt's 32
# candidates are sampled once; best-of-$n$ keeps the best of the first $n$, so every rung
# sees the same samples. $n = 32$ costs $\log 32 - 31/32 \approx 2.5$ nats, about where
# the runs above ended.

# %%
from moss_lab.methods.best_of_n import analytic_kl

kl_fn = checks_methods.use_if_passed(best_of_n_kl, bon_kl_ok, analytic_kl)
timed("best-of-n", train_best_of_n, BestOfNConfig(ns=(1, 2, 4, 8, 16, 32), pool=32),
      run_dir=RUNS / "bon")
report("best-of-n")
print(f"{'n':>4} {'KL (nats)':>10} {'plug-in KL':>11} {'RM score':>9} {'gold':>7}")
for r in results["best-of-n"].history:
    print(f"{r['n']:4d} {kl_fn(r['n']):10.2f} {r['objective/kl_plugin']:11.2f} "
          f"{r['reward/score']:9.2f} {r['reward/gold']:7.2f}")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): the `KL (nats)` column exactly 0.00, 0.19, 0.64, 1.20, 1.84, 2.50, and the plug-in KL the same up to $n = 8$, then 1.82 and 2.46. The RM score climbs from 1.2-1.7 at $n = 1$ to 3.9-4.0 at $n = 32$. The gold (seed 0: -1.64, -0.45, 0.34, 0.55, 1.27, 1.11) starts at -2.0 to -0.8 at $n = 1$, reaches +0.5 to +0.9 at $n = 8$ and +1.0 to +1.3 at $n = 16$, and then changes little: -0.16 to +0.22 from $n = 16$ to 32, where the RM score still gains 0.1-0.2.

# %% [markdown]
# The reward-model score climbs steadily with $n$ (it is what is
# being maximised: about 1.4 to 4.0). The gold score climbs fast at first, from about
# $-1.6$ at $n = 1$ (a base-model sample: a mean over 64 prompts is noisy, $\pm 0.3$) to
# about $+0.5$ at $n = 8$ and $+1.3$ at $n = 16$, and then stops ($+1.1$ at $n = 32$): the
# best of many by the reward model is increasingly a response the reward model
# *overrates*, so its score keeps rising while gold does not (best-of-$n$ over-optimises
# too; Gao et al.'s best-of-$n$ gold curves bend over as well). The **plug-in KL**, measured on
# the 32 candidates' own empirical distribution, is close to the analytic value, a little
# below at large $n$ where some candidates repeat.
#
# ## 4. The frontier: gold against KL for every method
#
# Two more runs so that every method is on one plot: **PPO** (toy-fast, the lab-06 run,
# short) and **DPO** (lab 09, on 512 simulated toy labels). PPO's own metrics come from its
# rollout batches (different prompts each iteration); to put it on the same footing we
# save a checkpoint every 2 iterations and evaluate each with the same evaluation as the
# others (not counted in its time).

# %%
policy, tokenizer = load_policy("toy")
eval_config = MethodConfig()
evaluate = Evaluator(policy, tokenizer, make_reward_fn("toy", eval_config, tokenizer,
                                                       policy.device), eval_config)

ppo = timed("PPO", train_ppo, PPOConfig.preset("toy-fast", iterations=STEPS, save_every=2,
                                               save_final=False, sample_every=STEPS),
            run_dir=RUNS / "ppo", policy=(policy, tokenizer))
ppo_seconds = {r["iteration"]: r["time/elapsed_s"] for r in ppo.history}  # into the run
ppo_seconds[0] = ppo.history[0]["time/elapsed_s"] - ppo.history[0]["time/step_s"]
ppo.history = [{"step": 0, **evaluate(policy)[0]}] + [
    {"step": int(folder.name.split("-")[1]), **evaluate(load_policy(str(folder))[0])[0]}
    for folder in sorted((RUNS / "ppo" / "checkpoints").glob("iter-*"))]
torch.set_num_threads(1)
report("PPO")
timed("DPO", train_dpo, DPOTrainConfig(pairs=512, **common), run_dir=RUNS / "dpo")
report("DPO")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): with seed 0, `PPO: gold -1.96 -> best +1.61 (KL 2.78), last +1.00 (KL 3.51)` and `DPO: gold -1.96 -> best +0.17 (KL 2.36)`. Over the seeds PPO's best is +1.4 to +1.7, at 2.8-4.0 nats, and its last checkpoint 0 to 0.6 below it; DPO's best is +0.2 to +0.7, at 1.3-2.4 nats.

# %% [markdown]
# Gao et al. plot the gold score against $d = \sqrt{\mathrm{KL}}$ (their Figure 1: best-of-
# $n$ on the left, RL on the right; here on one plot). Each training run is a curve of its
# evaluations (a dot every 2 steps, from the base model at the origin of KL); best-of-$n$
# is its ladder of $n$ with the analytic KL.

# %%
STYLE = {"PPO": "C0", "DPO": "C1", "GRPO": "C2", "RLOO": "C3", "best-of-n": "k"}
fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
for name, colour in STYLE.items():
    h = results[name].history
    if name == "PPO":  # the checkpoints' times in the run
        h = [{**r, "time/elapsed_s": ppo_seconds[r["step"]]} for r in h]
    d = [max(r["objective/kl"], 0.0) ** 0.5 for r in h]
    gold = [r["reward/gold"] for r in h]
    marker = "s--" if name == "best-of-n" else "o-"
    axes[0].plot(d, gold, marker, color=colour, ms=4, label=name)
    if name != "best-of-n":  # shifted so that the last row is the run's total
        offset = timings[name] - h[-1]["time/elapsed_s"]
        axes[1].plot([r["time/elapsed_s"] + offset for r in h], gold, marker, color=colour,
                     ms=4, label=name)
axes[1].axhline(max(r["reward/gold"] for r in results["best-of-n"].history), color="k",
                ls="--", lw=1, label=f"best-of-n, its best n ({timings['best-of-n']:.0f} s)")
axes[0].set_xlabel(r"$d = \sqrt{\mathrm{KL}(\pi \,\|\, \pi_\mathrm{base})}$ (nats$^{1/2}$)")
axes[1].set_xlabel("wall time of the run (s, 1 thread)")
for ax in axes:
    ax.set_ylabel("gold score (64 evaluation prompts)")
    ax.axhline(results["GRPO"].history[0]["reward/gold"], color="gray", lw=0.8)
    ax.legend(fontsize=8)
axes[0].set_title("gold against distance from the base model")
axes[1].set_title("gold against wall time")
plt.show()

print(f"{'method':>10} {'gold start':>10} {'gold best':>10} {'KL at best':>11} {'seconds':>8}")
for name in STYLE:
    h = results[name].history
    best = max(h, key=lambda r: r["reward/gold"])
    print(f"{name:>10} {h[0]['reward/gold']:10.2f} {best['reward/gold']:10.2f} "
          f"{best['objective/kl']:11.2f} {timings[name]:8.0f}")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): in the table, the same `gold start` for every method but best-of-n (-1.96 with seed 0); `gold best` 1.61, 0.17, 1.14, 0.98, 1.27 for PPO, DPO, GRPO, RLOO and best-of-n with seed 0, and over the seeds +1.4 to +1.7 (PPO), +0.2 to +0.7 (DPO), +1.1 to +1.3 (GRPO), +1.0 to +1.4 (RLOO), +1.1 to +1.3 (best-of-n). PPO had the highest best and DPO the lowest in all three seeds; the order of the other three changes with the seed. The seconds depend on the machine and its load (PPO 18-43 s, best-of-n 4-16 s here).

# %% [markdown]
# What to read in the frontier (our runs; one seed each, and a gold mean over 64 prompts
# is noisy by about $\pm 0.3$):
#
# * **Every method raises the gold score** above the base model's (from $-2$ to $+0.2$ for
#   DPO, $+1.0$ to $+1.1$ for GRPO and RLOO, $+1.3$ for best-of-$n$, $+1.6$ for PPO at
#   its best), and every curve bends: the first nat of KL buys the most.
# * **The online RL methods (PPO, GRPO, RLOO) lie on one band**, within about the noise:
#   with a response-level reward, a group baseline does the critic's job about as well.
#   PPO sat a little below GRPO and RLOO at $d \approx 1$ and a little above them at
#   $d \approx 1.4$ in our runs, and went furthest from the base model in 20 iterations
#   ($d \approx 1.9$, KL 3.5 nats); its gold peaked at $+1.6$ (iteration 10, KL 2.8) and
#   fell back to $+1.0$: past that point more KL bought less gold (lab 08).
# * **Best-of-$n$ is at least as KL-efficient as the RL methods** all along its ladder
#   ($+0.3$ at $d \approx 0.8$, $n = 4$, where they are still below $0$; $+1.3$ at
#   $d \approx 1.4$, $n = 16$, where they are at $+0.8$ to $+1.0$; its $n = 1$ starts
#   0.3 higher, on its own base samples), as Gao et al. found on their much larger models;
#   it flattens only past $n = 16$.
# * **DPO is the least KL-efficient**: at the KL where the online methods reach $+1$ it is
#   near $0$. It learns from fixed pairs of *base-model* samples and never sees feedback on
#   what the policy now writes; its KL grows as it fits those pairs (lab 09).
# * In **wall time** (right; each curve ends at the run's total, so a late start is its
#   setup: loading, PPO's critic pre-training, DPO's sampling and labelling of pairs),
#   PPO rises fastest ($+1.0$ after about 9 s, its peak after 11 s); GRPO and RLOO reach
#   about $+1$ by the end of their 20 steps (8-12 s), their steps costing about the same
#   as PPO's iterations (the sampling dominates). Best-of-$n$ costs only its sampling,
#   but $n$ times the sampling cost at *every* use, forever; the trained methods pay once.
#
# **Benchmark**: `python benchmarks/methods.py` runs every method with its defaults for
# the same wall-time budget (60 s by default) and prints one JSON line.
#
# **Try it yourself**: `GRPOTrainConfig(scale_rewards="none")` (Dr. GRPO), `group_size=4`
# or `16` at the same 64 responses per step, `RLOOTrainConfig(beta=0.2)`, or
# `reward="gold"` (the oracle: no proxy to hack) for every method.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. GRPO's advantage of a response is
#    - (a) its reward minus the critic's value
#    - (b) its reward
#    - (c) its reward standardised within its group: (r - group mean) / group std
#    - (d) the mean reward of the other responses
#
# 2. RLOO with $k = 4$ responses to one prompt, rewards $(1, 2, 3, 6)$: what is the baseline of the first response?
#
# 3. The KL of best-of-$n$ to the base model is $\log n - (n-1)/n$. For $n = 8$?
#
# 4. What do GRPO and RLOO save compared with PPO?
#    - (a) The reward model
#    - (b) Sampling
#    - (c) The reference model
#    - (d) The critic, a second network as large as the policy
#
# 5. What does best-of-$n$ cost?
#    - (a) $n$ times the sampling, at every use, forever
#    - (b) One training run, then nothing
#    - (c) A critic
#    - (d) Nothing

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: "c", 2: 3.667, 3: 1.204, 4: "d", 5: "a"}
### END SOLUTION
score_quiz("10", quiz_answers)
