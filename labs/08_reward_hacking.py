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
# 3. gold against $\sqrt{\mathrm{KL}}$ for several $\beta$, with Gao et al.'s fit;
# 4. an adaptive $\beta$ that steers the KL to a target.
#
# Three exercises along the way: the KL of a response (the x-axis of every plot here),
# Gao et al.'s fit, and the adaptive KL controller's update.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - see reward hacking: the proxy rises while gold peaks and falls;
# - compute the KL of a response and fit Gao et al.'s gold-against-$\sqrt{\mathrm{KL}}$ curve;
# - write the adaptive KL controller's update and say how it steers the KL.
#
# **Time:** about 45 minutes of reading, exercises and the quiz; the code runs in a few minutes.
#
# After each cell that measures or plots something, a **What you should see** note gives the values to expect: exact ones where nothing is random; otherwise the range we measured over seeds 0-2 (the notebook uses 0) where we measured it, and else the notebook's seed-0 value with a tolerance. PPO runs are noisy: expect the same shape, not the same digits.

# %%
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets

import matplotlib.pyplot as plt
import torch
import transformers

from moss_lab import checks, toyworld
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
# reward model (trained on the base model's samples, ~85% agreement with gold).

# %%
ITERATIONS = 60  # long enough to see the fall; the penalised runs below are shorter
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
# **What you should see** (seeds 0-2; the notebook uses 0): `kl_coef=0.0: finished` in 35-50 s; the proxy climbs almost steadily, from +0.95-+1.41 to +3.99-+4.25. Gold starts at -1.71 to -1.25, peaks at +1.41 to +1.57 (iteration 8-34, 6-27 s in; seed 0: +1.57 at iteration 34) and ends at -0.87 to -0.22, well below its peak.

# %% [markdown]
# That is reward hacking. For the first few iterations the proxy and the gold score agree:
# the policy learns what the reward model got right (stay on topic, be polite, end the
# answer). Then the proxy keeps climbing while the gold score falls from its peak: the
# policy has found what the reward model gets wrong. (Our run: gold near +1 by iteration
# 6, then a noisy plateau up to its peak at iteration 34; seeds 1 and 2 peak earlier, at
# iterations 8 and 12. When gold falls depends on the reward model and the seed: a better reward
# model holds out longer, which is why this run is 60 iterations long. That it falls
# while the proxy rises is the point.)
#
# A real run has no gold score. What would have warned it? The signals MOSS-RLHF watches
# (lab 06): the perplexity of the responses under the reference, their length, and
# distinct-2 (distinct word pairs over all word pairs of a batch; `moss_lab/ppo/monitor.py`).

# %%
COLLAPSE_PANELS = [("response/ref_perplexity", "perplexity under the reference"),
                   ("response/length", "response length (tokens)"),
                   ("response/distinct_2", "distinct-2 (distinct word pairs / pairs)")]
fig, axes = plt.subplots(1, len(COLLAPSE_PANELS), figsize=(13, 3.2))
for ax, (key, title) in zip(axes, COLLAPSE_PANELS):
    ax.plot(it, [r[key] for r in h])
    ax.axvline(it[peak], color="gray", ls=":", label=f"gold peaks (iteration {it[peak]})")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("PPO iteration (kl_coef = 0)")
axes[0].legend(fontsize=8)
plt.show()
for key, title in COLLAPSE_PANELS:
    final = sum(r[key] for r in h[-5:]) / 5
    print(f"{title:42s} start {h[0][key]:6.2f}   at the gold peak {h[peak][key]:6.2f}   "
          f"last 5 iterations {final:6.2f}")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): perplexity start 2.17-2.30, at the gold peak 1.89-2.16, last 5 iterations 4.0-5.9; length start 17.2-17.7, at the peak 11.1-13.6, last 5 14.2-14.9; distinct-2 start 0.33-0.35 and last 5 0.21-0.22 (at the peak 0.24 for seed 0, whose peak comes late; 0.39-0.40 for seeds 1-2, which peak early).

# %% [markdown]
# Up to the gold peak the perplexity under the reference stays healthy (our run: 2.20 at
# the start, 1.8-2.3 on the plateau, 2.11 at the peak) and responses get shorter as the
# policy stops rambling (17 tokens at the start, 12-14 on the plateau). Past the peak it
# turns, while the proxy keeps rising: the perplexity jumps (2.71 at iteration 42, 4.45 at
# iteration 58; 4.03 over the last 5 iterations) and responses grow back to 15 tokens.
# distinct-2 warns first: up from 0.35 to 0.40 by iteration 7, then down all along the
# plateau, 0.24 at the peak and 0.21 at the end, as every answer becomes the same few
# phrases. That is MOSS's pattern collapse, visible without the gold score; the reward
# model's own score never showed it.
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
# **What you should see** (seeds 0-2; the notebook uses 0): the base column is the same for every seed (total -2.06; helpfulness 0.68, harmlessness -0.24, conciseness -0.08, degeneracy -2.43). After kl=0: total -1.01 to -0.21, harmlessness 0.49-0.50, conciseness 0.00, degeneracy -1.77 to -1.30; helpfulness 0.26-0.69 (seed 0: 0.59; one seed of three kept it at the base level). Most hacked answers open with "thanks for asking .".

# %% [markdown]
# Read the table and the samples. The hacked policy still beats the base model in total
# (our run: -2.06 -> -0.21; it is past its peak, not below the start), but it is *less
# helpful* than the base model (0.68 -> 0.59): its gains are all form (a polite opening,
# no rude or filler sentences, answers that end), not content. And look at *how* it
# writes: every answer opens with "thanks for asking .", which the reward model loves,
# then one or two short facts, and sentences start to leave the grammar ("coffee keeps
# people live"; section 3 shows worse). The reward model saw only the base model's
# samples; text unlike anything the base model writes is outside its training
# distribution, its scores there are arbitrary, and PPO exploits whatever is arbitrary in
# its favour.
#
# ## 3. How far is the hacked policy from the base model?
#
# Every plot below puts the KL to the initial policy on its x-axis: the trainer's
# `objective/kl`, the $k_1$ estimate summed over each response's tokens (the chain rule of
# lab 06 makes the sum an unbiased estimate of the KL between the two distributions over
# whole responses), averaged over the batch.
#
# ### Exercise 1 - the KL of each response
#
# `logp`, `ref_logp` and `mask` are `(batch, T)`: the log-probabilities of the sampled
# tokens under the policy and the initial policy, and 1 on each response's tokens, 0 on
# the padding. Return the $k_1$ KL estimate of each response, shape `(batch,)`.

# %%
def response_kl(logp, ref_logp, mask):
    """sum over each response's real tokens of logp - ref_logp: shape (batch,)."""
    ### BEGIN SOLUTION
    return ((logp - ref_logp) * mask).sum(dim=1)
    ### END SOLUTION


# %%
response_kl_ok = checks.check_response_kl(response_kl)

# %% [markdown]
# Now measure it on fresh samples of the hacked policy: which responses moved furthest
# from what the base model would write? (Your `response_kl` once its check has passed,
# the reference until then.)

# %%
from moss_lab.ppo.rollout import policy_forward, sample, sequence_inputs

kl_fn = checks.use_if_passed(response_kl, response_kl_ok, checks.response_kl_reference)
hacked = runs[0.0].policy.eval()
enc = tokenizer(prompts, return_tensors="pt", padding=True)
with torch.no_grad():
    ids, mask = sample(hacked, enc.input_ids, enc.attention_mask, 20, tokenizer.eos_token_id,
                       tokenizer.pad_token_id, generator=torch.Generator().manual_seed(0))
    inputs = sequence_inputs(enc.input_ids, enc.attention_mask, ids, mask)
    logp, _ = policy_forward(hacked, inputs, ids, with_entropy=False)
    ref_logp, _ = policy_forward(base_model, inputs, ids, with_entropy=False)
kl_per_response = kl_fn(logp, ref_logp, mask)  # the padding holds junk log-probs
print(f"KL per response: mean {kl_per_response.mean():.1f} nats (the run's last logged "
      f"objective/kl: {runs[0.0].history[-1]['objective/kl']:.1f}), "
      f"min {kl_per_response.min():.1f}, max {kl_per_response.max():.1f}")
for i in kl_per_response.argsort(descending=True)[:3].tolist():
    text = tokenizer.decode(ids[i][mask[i].bool()], skip_special_tokens=True)
    print(f"  KL {kl_per_response[i]:5.1f}: {text}")

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): a mean KL of 14.5-19.6 nats per response (the last logged `objective/kl`, 16.6-21.4, is of the same size), min 1.0-5.6, max 31-58. The top three are "thanks for asking ." followed by broken, repeated facts (seed 0: "books have many black . books have many black .").

# %% [markdown]
# ## 4. Gold against $\sqrt{\mathrm{KL}}$
#
# Gao et al. plot everything against the distance $d = \sqrt{\mathrm{KL}}$ from the
# initial policy, because that is what optimisation spends. A KL penalty limits how far
# the policy can go. Two more runs, with $\beta = 0.02$ and $\beta = 0.1$:

# %%
for beta in (0.02, 0.1):
    runs[beta] = run(beta, iterations=24)  # a KL penalty keeps them near the start

# %% [markdown]
# **What you should see** (seeds 0-2; the notebook uses 0): two lines, `kl_coef=0.02: finished` and `kl_coef=0.1: finished`, in 14-22 s each.


# %% [markdown]
# Gao et al.'s form $R(d) = d(\alpha - \beta_\text{RL}\log d)$ is linear in its two
# parameters once divided by $d$: $R/d = \alpha - \beta_\text{RL}\log d$. We fit it by least
# squares to the $\beta = 0$ run, on gold *gains* over the base model (their $R$ is
# measured from the initial policy, so $R(0) = 0$).
#
# ### Exercise 2 - Gao et al.'s fit
#
# `d` and `gain` are 1-D tensors (all `d > 0`). Return `(alpha, beta_rl)`, the least-squares
# fit of `gain / d = alpha - beta_rl * log(d)`.

# %%
def gao_fit(d, gain):
    """Least squares of gain / d on [1, -log d]: (alpha, beta_rl)."""
    ### BEGIN SOLUTION
    X = torch.stack([torch.ones_like(d), -torch.log(d)], dim=1)
    coef = torch.linalg.lstsq(X, (gain / d)[:, None]).solution[:, 0]
    return coef[0], coef[1]
    ### END SOLUTION


# %%
gao_ok = checks.check_gao_fit(gao_fit)

# %%
fit_fn = checks.use_if_passed(gao_fit, gao_ok, checks.gao_fit_reference)

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
alpha, beta_rl = (float(c) for c in fit_fn(d[keep].double(), (g[keep] - gold_start).double()))
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
# **What you should see** (seeds 0-2; the notebook uses 0): the $\beta = 0$ run reaches $d$ = 4.2-4.7; the fit gives α = 1.40-1.93, β_RL = 0.71-1.05 and `the fit peaks at d*` 2.29-3.08 (seed 0: α = 1.62, β_RL = 0.76, d* = 3.08). The penalised runs end at $d$ = 2.0-2.2 ($\beta$ = 0.02) and 1.7-1.8 ($\beta$ = 0.1), with gold gains of +2.3 to +3.3 there; the proxy gains of all runs rise with $d$.

# %% [markdown]
# What to read in these plots:
#
# * The **proxy** (right) keeps rising with distance for every $\beta$: the reward model
#   always believes more optimisation is better.
# * The **gold** gain (left) rises, peaks and falls as $d$ grows: the shape Gao et al.
#   found, and their functional form follows it (loosely here: the toy gold rises faster
#   at small $d$ than the fit allows). The peak is the best the proxy can do; past
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
# ## 5. Steering the KL: the adaptive controller
#
# A fixed $\beta$ decides the KL only indirectly, and the right $\beta$ depends on the
# reward model, the prompts and the stage of training. Ziegler et al. (2019) adapt it
# instead, so that the measured KL tracks a **target** (`kl_target` in `PPOConfig`; the
# trainer calls the update once per iteration with the mean KL per response and the
# number of responses in the batch):
#
# $$e = \operatorname{clip}\Big(\frac{\mathrm{KL}}{\mathrm{KL}_\text{target}} - 1,\; -0.2,\; 0.2\Big), \qquad \beta \leftarrow \beta\,\Big(1 + e\,\frac{n_\text{steps}}{H}\Big),$$
#
# with $H$ the horizon (`kl_horizon`). KL above the target raises $\beta$ (a stronger pull
# back), below lowers it; the clip bounds the relative change of $\beta$ per update to
# $0.2\,n_\text{steps}/H$, so one noisy KL measurement cannot swing it.
#
# ### Exercise 3 - the adaptive KL update
#
# All arguments are numbers; return the new $\beta$.

# %%
def adaptive_kl_update(beta, kl, target, horizon, n_steps):
    """beta * (1 + clip(kl / target - 1, -0.2, 0.2) * n_steps / horizon)."""
    ### BEGIN SOLUTION
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return beta * (1.0 + error * n_steps / horizon)
    ### END SOLUTION


# %%
adaptive_ok = checks.check_adaptive_kl_update(adaptive_kl_update)

# %% [markdown]
# A toy run of the controller, without PPO: pretend the policy settles at a KL that falls
# as $\beta$ rises, $\mathrm{KL}(\beta) = 1 / (0.05 + \beta)$ nats (a made-up response, in
# the range of the runs above), and start from $\beta = 0.01$ and $\beta = 0.3$ with a
# target of 4 nats, 64 responses per iteration and a horizon of 1000.

# %%
update_fn = checks.use_if_passed(adaptive_kl_update, adaptive_ok, checks.adaptive_kl_reference)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for beta0 in (0.01, 0.3):
    beta, betas, kls = beta0, [], []
    for _ in range(400):
        kl_now = 1 / (0.05 + beta)
        betas.append(beta)
        kls.append(kl_now)
        beta = update_fn(beta, kl_now, 4.0, 1000, 64)
    axes[0].plot(betas, label=f"start β = {beta0}")
    axes[1].plot(kls, label=f"start β = {beta0}")
axes[1].axhline(4.0, color="k", ls=":", label="target")
axes[0].set_ylabel("β")
axes[1].set_ylabel("KL per response (nats)")
for ax in axes:
    ax.set_xlabel("iteration")
    ax.legend()
plt.show()
print(f"beta after 400 iterations: {betas[-1]:.3f} (the beta that gives KL = 4 here: 0.200)")

# %% [markdown]
# **What you should see** (exact, no randomness): both $\beta$ curves end at 0.200 and both KL curves at the target, 4.0 (`beta after 400 iterations: 0.200`). From $\beta = 0.01$ the KL starts at 16.7 nats and reaches 4 ± 0.1 after about 255 iterations; from $\beta = 0.3$ it starts at 2.86 and gets there after about 53.

# %% [markdown]
# Far from the target the clip makes $\beta$ change by a constant factor per iteration
# ($1 \pm 0.2 \cdot 64/1000$, about 1.3%), geometric and slow on purpose; near it, the
# steps shrink with the error. On a real run the KL responds to $\beta$ only through
# training, with a delay, which is why the horizon is long.
#
# **Try it yourself**: `PPOConfig.preset("toy-fast", kl_target=4.0)` (adaptive $\beta$;
# watch `objective/kl_coef`), a larger `missing_eos_penalty`, or `reward="gold"` (no
# proxy: does the gold score still fall?).

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. PPO with no KL penalty: what do the proxy (reward model) and gold scores do?
#    - (a) Both rise together
#    - (b) The proxy keeps rising; gold rises, peaks and falls
#    - (c) Both fall
#    - (d) Gold keeps rising; the proxy falls
#
# 2. The KL of one response to the reference, the x-axis of this lab's plots, is
#    - (a) the sum over its tokens of $\log\pi - \log\pi_\text{ref}$
#    - (b) the mean reward
#    - (c) the number of tokens
#    - (d) $\log\pi$ of the last token
#
# 3. Gao et al.'s fit $R(d) = d(\alpha - \beta_\text{RL}\log d)$ with $\alpha = 1$, $\beta_\text{RL} = 0.5$: at which $d$ does the gold score peak?
#
# 4. Adaptive KL: $\beta = 0.1$, KL 8 against a target of 4, 64 steps, horizon 1000. What is the new $\beta$?
#
# 5. Why does the gold score fall while the proxy still rises?
#    - (a) The learning rate is too small
#    - (b) The gold score is noisy
#    - (c) The policy exploits the reward model's mistakes, where it is blind or wrong
#    - (d) The reference model changes

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: "b", 2: "a", 3: 2.718, 4: 0.10128, 5: "c"}
### END SOLUTION
score_quiz("08", quiz_answers)
