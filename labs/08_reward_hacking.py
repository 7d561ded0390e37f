# %% [markdown]
# # Lab 08 - Reward hacking
#
# A reward model is a learned, imperfect stand-in for what people want. PPO is an
# optimiser: give it a proxy and enough freedom, and it finds the proxy's mistakes.
# *"When a measure becomes a target, it ceases to be a good measure"* (Goodhart).
#
# Gao, Schulman and Hilton, **"Scaling laws for reward model overoptimization"** (2022),
# measured this with a "gold" reward model playing the human: as PPO pulls the policy away
# from its initialisation, the **proxy** reward keeps rising, while the **gold** reward
# rises, peaks and falls. Plotted against $d = \sqrt{\mathrm{KL}(\pi\,\|\,\pi_\text{init})}$
# the gold curve fits
#
# $$R_\text{gold}(d) = d\,(\alpha - \beta_\text{RL} \log d).$$
#
# The toy world has a real gold score, so we can watch the same thing happen in a minute:
#
# 1. PPO with **no KL penalty** ($\beta = 0$): proxy up, gold up then down;
# 2. what the hacked policy writes;
# 3. gold against $\sqrt{\mathrm{KL}}$ for several $\beta$, with Gao et al.'s fit.

# %%
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import matplotlib.pyplot as plt
import torch
import transformers

from moss_lab import toyworld
from moss_lab.models import load_policy
from moss_lab.ppo import PPOConfig, train_ppo
from moss_lab.sampling import generate

transformers.utils.logging.disable_progress_bar()
torch.set_num_threads(1)
plt.rcParams["figure.constrained_layout.use"] = True
RUNS = Path(tempfile.mkdtemp(prefix="moss-lab-08-"))  # run folders go here, not in the repo
policy = load_policy("toy")  # (model, tokenizer), shared by all runs (train_ppo copies it)

# %% [markdown]
# ## 1. No KL penalty
#
# The `toy-fast` preset with `kl_coef=0`: nothing pulls the policy back towards the base
# model. Everything else is the PPO-max recipe of lab 06; the reward is the cached toy
# reward model (trained on the base model's samples, ~75% agreement with gold).

# %%
ITERATIONS = 36  # long enough to see the fall; the penalised runs below are shorter
runs = {}


def run(kl_coef, iterations=ITERATIONS):
    config = PPOConfig.preset("toy-fast", iterations=iterations, kl_coef=kl_coef,
                              save_final=False)  # the policy stays in memory
    result = train_ppo(config, run_dir=RUNS / f"kl-{kl_coef}", policy=policy)
    print(f"kl_coef={kl_coef}: {result.status} in {result.elapsed_s:.0f} s")
    return result


runs[0.0] = run(0.0)
h = runs[0.0].history
it = [r["iteration"] for r in h]
proxy = [r["reward/score"] for r in h]
gold = [r["reward/gold"] for r in h]
peak = max(range(len(gold)), key=gold.__getitem__)

fig, ax = plt.subplots(figsize=(7, 3.6))
ax.plot(it, proxy, label="proxy: reward-model score (optimised)")
ax.plot(it, gold, label="gold score (hidden from PPO)")
ax.axvline(it[peak], color="gray", ls=":", label=f"gold peaks (iteration {it[peak]})")
ax.set_xlabel("PPO iteration (kl_coef = 0)")
ax.set_ylabel("mean score per response")
ax.legend()
plt.show()
print(f"gold: start {gold[0]:+.2f}, peak {gold[peak]:+.2f} at iteration {it[peak]} "
      f"(~{h[peak]['time/elapsed_s']:.0f} s), end {gold[-1]:+.2f};  "
      f"proxy: {proxy[0]:+.2f} -> {proxy[-1]:+.2f}")

# %% [markdown]
# That is reward hacking. For the first few iterations the proxy and the gold score agree:
# the policy learns what the reward model got right (stay on topic, be polite, end the
# answer). Then the proxy keeps climbing while the gold score falls, well below where the
# base model started: the policy has found what the reward model gets wrong.
#
# ## 2. What does the hacked policy write?
#
# The gold score is a sum of parts (`helpfulness`, `harmlessness`, `conciseness`,
# `degeneracy`), so we can see *which* part the policy gave up.

# %%
prompts = toyworld.sample_prompts(64, seed=2024)
base_model, tokenizer = policy


def gold_parts(model):
    s = generate(model, tokenizer, prompts, max_new_tokens=20, seed=0)
    parts = [toyworld.gold_score(p, r, e).as_dict() for p, r, e in zip(s.prompts, s.responses, s.ended)]
    return s, {k: sum(d[k] for d in parts) / len(parts) for k in parts[0]}


s_base, base_parts = gold_parts(base_model)
s_hack, hack_parts = gold_parts(runs[0.0].policy.eval())
print(f"{'gold part':>14} {'base model':>11} {'after kl=0':>11}")
for k in base_parts:
    print(f"{k:>14} {base_parts[k]:11.2f} {hack_parts[k]:11.2f}")
for i in range(3):
    print(f"\n{prompts[i]}\n   base -> {s_base.responses[i]}\n   hack -> {s_hack.responses[i]}")

# %% [markdown]
# Read the table and the samples. In our run the policy kept what the reward model and
# the gold score agree on (a polite opener: `harmlessness` went up) and gave up what the
# reward model cannot judge: answers drift off topic (facts about dogs for a question about
# coffee: `helpfulness` falls) and into sentences outside the grammar ("rain fills oven":
# `degeneracy`). The reward model saw only the base model's samples; text unlike anything
# the base model writes is outside its training distribution, its scores there are
# arbitrary, and PPO exploits whatever is arbitrary in its favour.
#
# ## 3. Gold against $\sqrt{\mathrm{KL}}$
#
# Gao et al. plot everything against the distance $d = \sqrt{\mathrm{KL}}$ from the
# initial policy, because that is what optimisation spends. A KL penalty limits how far
# the policy can go. Two more runs, with $\beta = 0.02$ and $\beta = 0.1$:

# %%
for beta in (0.02, 0.1):
    runs[beta] = run(beta, iterations=24)  # a KL penalty keeps them near the start


# %% [markdown]
# Gao et al.'s form $R(d) = d(\alpha - \beta_\text{RL}\log d)$ is linear in its two
# parameters once divided by $d$: $R/d = \alpha - \beta_\text{RL}\log d$. We fit it by least
# squares to the $\beta = 0$ run, on gold *gains* over the base model (their $R$ is
# measured from the initial policy, so $R(0) = 0$).

# %%
def curve(history, key):
    d = torch.tensor([max(r["objective/kl"], 0.0) ** 0.5 for r in history])
    y = torch.tensor([r[key] for r in history])
    return d, y


gold_start = runs[0.0].history[0]["reward/gold"]  # the policy is unchanged before iteration 1
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for beta, result in runs.items():
    d, g = curve(result.history, "reward/gold")
    _, p = curve(result.history, "reward/score")
    axes[0].plot(d, g - gold_start, "o-", ms=3, label=f"gold, β = {beta}")
    axes[1].plot(d, p - p[0], "o-", ms=3, label=f"proxy, β = {beta}")

d, g = curve(runs[0.0].history, "reward/gold")
keep = d > 0.05  # log d needs d > 0
X = torch.stack([torch.ones(int(keep.sum())), -torch.log(d[keep])], dim=1)
coef = torch.linalg.lstsq(X, ((g[keep] - gold_start) / d[keep])[:, None]).solution[:, 0]
alpha, beta_rl = coef.tolist()
grid = torch.linspace(0.05, float(d.max()), 200)
axes[0].plot(grid, grid * (alpha - beta_rl * torch.log(grid)), "k--",
             label=f"fit d(α - β_RL log d): α={alpha:.2f}, β_RL={beta_rl:.2f}")
axes[0].set_ylabel("gold gain over the base model")
axes[1].set_ylabel("proxy (RM score) gain")
for ax in axes:
    ax.axhline(0, color="gray", lw=0.8)
    ax.set_xlabel(r"$d = \sqrt{KL(\pi \,\|\, \pi_{init})}$  (nats$^{1/2}$ per response)")
    ax.legend(fontsize=8)
plt.show()
print(f"the fit peaks at d* = exp(alpha / beta_RL - 1) = {torch.exp(torch.tensor(alpha / beta_rl - 1)):.2f}"
      if beta_rl > 0 else "the fit has no peak (beta_RL <= 0)")

# %% [markdown]
# What to read in these plots:
#
# * The **proxy** (right) keeps rising with distance for every $\beta$: the reward model
#   always believes more optimisation is better.
# * The **gold** gain (left) rises, peaks and falls as $d$ grows: the shape Gao et al.
#   found, and their functional form fits it. The peak is the best the proxy can do; past
#   it, every nat of KL buys proxy reward with real quality.
# * A **KL penalty** stops the policy before it gets far: runs with larger $\beta$ stay at
#   small $d$, near the peak, instead of sliding down the other side. Gao et al. found
#   that, measured against KL, the penalty acted much like early stopping: it chose where
#   on the curve a run ended rather than lifting the curve; what moved the peak was a
#   **better reward model** (more data, more parameters). Compare the runs at the same $d$
#   here: do the penalised ones sit higher? One seed each is not enough to say; try two
#   more seeds before drawing a conclusion.
#
# **What protects real RLHF runs**: a KL penalty or target (InstructGPT, MOSS-RLHF);
# watching KL, length and perplexity rather than reward alone (MOSS, Part I); early
# stopping; a reward model retrained on the policy's new outputs (iterated RLHF);
# ensembles and reward-model uncertainty.
#
# **Try it yourself**: `PPOConfig(kl_target=4.0)` (adaptive $\beta$), a larger
# `missing_eos_penalty`, or `reward="gold"` (no proxy: does the gold score still fall?).
