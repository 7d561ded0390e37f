# %% [markdown]
# # Lab 11 - Reward modeling under noisy preferences (MOSS-RLHF Part II)
#
# Lab 03 showed that label noise makes a reward model weaker, and tried Part II's remedies
# with the model judging its own labels. **"Secrets of RLHF in Large Language Models Part
# II: Reward Modeling"** (Wang et al., 2024) does it with a second opinion: train an
# **ensemble** of reward models on the same data and read, for every pair, how strongly and
# how unanimously they order it. That *preference strength* finds the pairs that are
# probably mislabelled (flip them), the ambiguous ones (smooth them) and the clear ones
# (ask for a margin). They also add a **contrastive** term on the reward model's
# representations.
#
# In this lab you will:
#
# 1. label the same answer pairs with annotators at three noise levels;
# 2. measure preference strength, mean and spread of $r_c - r_r$ over an ensemble (the
#    first exercise), and plot it against the gold margin;
# 3. pick the suspect pairs and measure, against the known gold, how many are really
#    mislabelled (precision and recall);
# 4. train with flipping, smoothing, the adaptive margin and all three, driven by that
#    strength, at each noise level, and compare with gold on held-out pairs;
# 5. write InfoNCE (the second exercise) and measure the contrastive term.
#
# Every number here comes from small, noisy runs: the lab says, after each run cell, what we saw over 3 data seeds.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - measure an ensemble's preference strength and use it to find mislabelled and ambiguous pairs;
# - judge flipping, smoothing and an adaptive margin against the seed spread;
# - write InfoNCE and measure what a contrastive term does.
#
# **Time:** about 45 minutes of reading, exercises and the quiz; the code runs in about 3 minutes on a 2-core laptop (22 small reward models of ~5 s each).

# %%
import dataclasses

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from moss_lab import checks_reward
from moss_lab.models import load_policy
from moss_lab.notebook import quiet_notebook
from moss_lab.preferences import gold_agreement, gold_difference, toy_pairs
from moss_lab.reward import RewardConfig, pair_scores, train_reward_model
from moss_lab.scoring import reward_inputs
from moss_lab.toyworld import SimulatedAnnotator

quiet_notebook()  # no progress bars or deprecation notes between the lessons
torch.set_num_threads(1)  # a 123k-parameter model: one thread is fastest on a busy laptop
SEED = 0  # the data seed; the ranges quoted below are over seeds 0, 1 and 2

# %% [markdown]
# ## 1. The same answers, three annotators
#
# 1000 pairs of the toy base model's answers (600 to train on, 400 held out), labelled
# first by a perfect annotator; then the training pairs are relabelled by the simulated
# annotator of lab 01 at three noise levels $\tau$: $P(\text{A preferred}) =
# \sigma\big((g_A - g_B)/\tau\big)$. The held-out pairs keep the gold order: we only ever
# measure agreement with gold on them. Because this is the toy world we know, for each
# training label, whether it is **wrong** (it contradicts the gold score): real data never
# tells you that, which is the whole difficulty of Part II.

# %%
policy, tokenizer = load_policy("toy")
pairs = toy_pairs(policy, tokenizer, 1000, SimulatedAnnotator(noise=0.0, seed=SEED),
                  seed=SEED, max_new_tokens=20)
answers, held_out = pairs[:600], pairs[600:]


def relabel(pairs, annotator):
    """The same answer pairs, each labelled again by `annotator` (chosen/rejected may swap)."""
    out = []
    for p in pairs:
        keep = annotator.prefers_a(p.prompt, p.chosen, p.rejected, p.chosen_ended, p.rejected_ended)
        out.append(p if keep else dataclasses.replace(
            p, chosen=p.rejected, rejected=p.chosen,
            chosen_ended=p.rejected_ended, rejected_ended=p.chosen_ended))
    return out


NOISE = [1.0, 2.5, 5.0]
labelled = {tau: relabel(answers, SimulatedAnnotator(noise=tau, seed=SEED + 1)) for tau in NOISE}
gold_margin = {tau: torch.tensor([gold_difference(p) for p in labelled[tau]]) for tau in NOISE}
mislabelled = {tau: gold_margin[tau] < 0 for tau in NOISE}  # the label contradicts gold
for tau in NOISE:
    print(f"noise {tau}: labels agree with gold on {gold_agreement(labelled[tau]):.3f} of the "
          f"pairs; {mislabelled[tau].float().mean():.1%} are mislabelled")

# %% [markdown]
# What you should see (data seeds 0-2): 86-88%, 70-75% and 62-64% agreement; 12-14%,
# 24-29% and 35-36% of the labels are wrong (the rest up to 100% are gold ties, which no
# label can get wrong).
#
# ## 2. Preference strength from an ensemble
#
# Train $M$ reward models on the same labels, differing only by their seed (the head's
# initialisation and the batch order). Member $m$ gives pair $i$ a gap $d_{mi} = r_m(x_i,
# y_{c,i}) - r_m(x_i, y_{r,i})$, and Part II reads two numbers from them:
#
# $$s_i = \frac1M \sum_{m=1}^M d_{mi} \qquad\qquad u_i = \sqrt{\frac{1}{M-1}\sum_{m=1}^M
#   (d_{mi} - s_i)^2}$$
#
# the **preference strength** $s_i$ (the ensemble's verdict: positive when it agrees with
# the label) and its **uncertainty** $u_i$ (how much the members disagree).
#
# ### Exercise 1 - strength and spread
#
# `r_chosen` and `r_rejected` have shape `(M, n)`: row $m$ holds member $m$'s rewards for
# the $n$ pairs. Return `(strength, spread)`, each of shape `(n,)`; the spread is the
# sample standard deviation ($M - 1$ in the denominator).

# %%
def preference_strength(r_chosen, r_rejected):
    """(mean over the members of r_c - r_r, its sample std over the members), each (n,)."""
    ### BEGIN SOLUTION
    gaps = r_chosen - r_rejected
    return gaps.mean(dim=0), gaps.std(dim=0)
    ### END SOLUTION


# %%
strength_ok = checks_reward.check_preference_strength(preference_strength)

# %% [markdown]
# Now the ensembles: $M = 3$ reward models per noise level (Part II trains 10 on much
# more data; 3 is what fits in a minute here), each 3 epochs over the 600 labelled pairs.
# `train_ensemble` calls `train_reward_model` with seeds 0, 1, 2. Member 0 doubles as the
# plain Bradley-Terry baseline of section 4, and the three members together tell how much a
# result moves with the seed alone.

# %%
from moss_lab.preference_strength import strength_stats, suspect_pairs, train_ensemble  # noqa: E402

# ~5 s per model; evaluated on the held-out pairs once, at the end
SMALL = RewardConfig(epochs=3, batch_size=64, lr=3e-3, warmup_steps=5, eval_every_epoch=False)
M = 3
strength_fn = checks_reward.use_if_passed(
    preference_strength, strength_ok, lambda r_c, r_r: strength_stats(r_c - r_r))

ensembles, strength, spread = {}, {}, {}
for tau in NOISE:
    ensembles[tau] = train_ensemble(labelled[tau], SMALL, n_models=M, eval_pairs=held_out)
    scores = [pair_scores(model, tok, labelled[tau]) for model, tok, _ in ensembles[tau]]
    r_c = torch.stack([c for c, _ in scores])
    r_r = torch.stack([r for _, r in scores])
    strength[tau], spread[tau] = strength_fn(r_c, r_r)
    accs = [final["acc_gold"] for _, _, final in ensembles[tau]]
    print(f"noise {tau}: members agree with gold on {min(accs):.3f}-{max(accs):.3f} of the "
          f"held-out pairs; {(strength[tau] < 0).float().mean():.1%} of the training pairs "
          f"have a negative strength")

# %%
fig, axes = plt.subplots(1, len(NOISE), figsize=(13, 3.8), sharey=True)
for ax, tau in zip(axes, NOISE):
    wrong = mislabelled[tau]
    for mask, colour, name in ((~wrong, "tab:blue", "label agrees with gold"),
                               (wrong, "tab:red", "label contradicts gold")):
        ax.errorbar(gold_margin[tau][mask], strength[tau][mask], yerr=spread[tau][mask],
                    fmt="o", ms=2.5, alpha=0.35, elinewidth=0.5, color=colour, label=name)
    ax.axhline(0, color="k", lw=0.8)
    ax.axvline(0, color="k", lw=0.8)
    corr = torch.corrcoef(torch.stack([gold_margin[tau], strength[tau]]))[0, 1]
    ax.set_title(f"τ = {tau}: correlation {corr:.2f}")
    ax.set_xlabel("gold margin g(chosen) - g(rejected)")
axes[0].set_ylabel("strength s (bars: ± spread u)")
axes[0].legend(loc="upper left", fontsize=8)
plt.show()

# %% [markdown]
# Each dot is a training pair: left of the vertical line its label is wrong (red), below
# the horizontal line the ensemble thinks so. What you should see (seeds 0-2): members at
# 0.67-0.74 held-out agreement with gold at $\tau = 1$, 0.57-0.66 at $\tau = 5$; 24-33% of
# the training pairs with a negative strength; strength rising with the gold margin
# (correlation 0.42-0.48 in seed 0, at every noise level); about half of the red dots below
# zero and most blue ones above; and the whole cloud squeezed towards 0 as the noise grows:
# models trained on noisier labels are less sure of every pair. The ensemble has learned
# the gold direction from labels that are often wrong, because the errors are not
# systematic: this is what makes the strength useful.
#
# ## 3. Which pairs are probably mislabelled?
#
# Part II flips the pairs with a negative strength. A more cautious rule asks the ensemble
# to be sure: $s_i < -z\,u_i$, negative by more than $z$ standard deviations. In the toy
# world we can score both rules against the truth:
#
# - **precision**: of the pairs flagged, the fraction really mislabelled;
# - **recall**: of the mislabelled pairs, the fraction flagged.

# %%
def precision_recall(flagged, truly_wrong):
    hits = (flagged & truly_wrong).sum().item()
    return hits / max(flagged.sum().item(), 1), hits / max(truly_wrong.sum().item(), 1)


print(f"{'noise':>6} {'rule':>10} {'flagged':>8} {'precision':>10} {'recall':>7}  (base rate)")
for tau in NOISE:
    for name, z in (("s < 0", 0.0), ("s < -u", 1.0)):
        flagged = suspect_pairs(strength[tau], spread[tau], z=z)
        p, r = precision_recall(flagged, mislabelled[tau])
        print(f"{tau:>6} {name:>10} {flagged.float().mean():>8.1%} {p:>10.2f} {r:>7.2f}  "
              f"({mislabelled[tau].float().mean():.2f})")

# %% [markdown]
# Compare each precision with the **base rate** (the fraction mislabelled, in brackets):
# a random pick of pairs would be right that often. What you should see (seeds 0-2): at
# every noise level the flagged pairs are 1.3-2.3 times more often wrong than a random
# pick (precision 0.23-0.33 against a base rate of 0.12-0.14 at $\tau = 1$, 0.48-0.65
# against 0.35-0.36 at $\tau = 5$); recall about a half for $s < 0$; the cautious rule
# $s < -u$ flags fewer pairs (13-23% instead of 24-33%) with a higher precision and a
# lower recall. But at low noise about 70% of the flagged pairs are **correct** labels
# that this weak ensemble (67-74% agreement with gold) gets wrong: flipping them all would
# add noise.
# Part II's ensemble is far stronger than its noise; ours is not, and precision is what
# decides whether flipping helps.
#
# ## 4. The remedies, driven by the ensemble's strength
#
# `train_reward_model(pairs, config, strength=s)` takes a strength measured elsewhere and
# uses it from the first epoch (instead of the model's own gap after one epoch, lab 03):
#
# | remedy | option | what it does to pair $i$ |
# |---|---|---|
# | flip | `flip_fraction=f` | swap chosen and rejected of the fraction $f$ with the lowest $s_i$; $f$ = the share with $s_i < 0$ |
# | smoothing | `label_smoothing=ε, smooth_fraction=q` | $-(1-\varepsilon)\log\sigma(d) - \varepsilon\log\sigma(-d)$ on the fraction $q$ with $s_i$ closest to 0 (ambiguous) |
# | adaptive margin | `adaptive_margin=α` | $-\log\sigma(d - \alpha\max(s_i, 0))$: clear pairs must be separated more |
# | all three | | Part II's recipe: flip the negative, smooth the ambiguous, margin for the rest |
#
# Four runs per noise level; the plain model is the ensemble's member 0 (the same seed).

# %%
REMEDIES = {
    "flip": lambda f: {"flip_fraction": f},
    "smoothing": lambda f: {"label_smoothing": 0.2, "smooth_fraction": 0.3},
    "adaptive margin": lambda f: {"adaptive_margin": 0.5},
    "all three": lambda f: {"flip_fraction": f, "label_smoothing": 0.2, "smooth_fraction": 0.3,
                            "adaptive_margin": 0.5},
}
results = {}
for tau in NOISE:
    members = [final["acc_gold"] for _, _, final in ensembles[tau]]
    results[tau] = {"plain": members[0]}
    negative = min((strength[tau] < 0).float().mean().item(), 0.5)  # flip_fraction <= 0.5
    for name, options in REMEDIES.items():
        config = dataclasses.replace(SMALL, **options(negative))
        _, _, final = train_reward_model(labelled[tau], config, eval_pairs=held_out,
                                         strength=strength[tau])
        results[tau][name] = final["acc_gold"]
    row = "  ".join(f"{k} {v:.3f}" for k, v in results[tau].items())
    print(f"noise {tau}: {row}   (seeds of plain: {min(members):.3f}-{max(members):.3f})")

# %%
names = list(results[NOISE[0]])
n_gold = ensembles[NOISE[0]][0][2]["n_gold"]
width = 0.8 / len(names)
plt.figure(figsize=(9, 3.8))
for k, name in enumerate(names):
    x = torch.arange(len(NOISE)) + (k - (len(names) - 1) / 2) * width
    plt.bar(x, [results[tau][name] for tau in NOISE], width=width, label=name)
for j, tau in enumerate(NOISE):  # the spread of plain BT over the M seeds, and one std error
    members = [final["acc_gold"] for _, _, final in ensembles[tau]]
    x0 = j - (len(names) - 1) / 2 * width
    plt.vlines(x0, min(members), max(members), color="k", lw=2)
plt.xticks(range(len(NOISE)), [f"τ = {tau}\n(labels {gold_agreement(labelled[tau]):.2f})"
                               for tau in NOISE])
plt.ylim(0.5, 0.8)
plt.ylabel("held-out agreement with gold")
se = (0.65 * 0.35 / n_gold) ** 0.5
plt.title(f"Part II's remedies (black bar: plain BT over {M} seeds; one standard error "
          f"≈ {se:.3f})")
plt.legend(fontsize=8, ncol=3, loc="upper right")
plt.show()

# %% [markdown]
# Read this chart against the black bars: they are the same plain training with three
# seeds, and they span 0.01-0.06. What you should see, over data seeds 0-2: every remedy
# lands between -0.06 and +0.04 of plain training (member 0); none is better at all three
# noise levels in all three seeds. Flipping was above plain at the highest noise in all
# three seeds (+0.01 to +0.03 at $\tau = 5$, where the flagged pairs are more often wrong
# than right) and mixed at $\tau = 1$ (-0.03 to +0.02, where most flagged labels were
# correct); smoothing the 30% most ambiguous pairs was below plain at $\tau = 1$ in all
# three seeds (-0.02 to -0.06): with mostly correct labels it only weakens them. This is
# the lesson of section 3 in numbers: a remedy driven by the strength is only as good as
# the ensemble that measures it. Part II's gains (1-2 points of accuracy on real data) come
# with reward models that are much better than their noise; to see them here, train on
# more pairs, for more epochs, with more members (`benchmarks/reward_model.py` trains a
# bigger reward model), and run several seeds before believing a difference.
#
# ## 5. A contrastive term on the representations
#
# The reward head reads one vector per answer, the last hidden state $h$ at the last
# token. Part II represents a comparison by the difference $v_i = h(x_i, y_{c,i}) -
# h(x_i, y_{r,i})$ and adds an unsupervised **contrastive** loss on it, to make the
# representations of different comparisons distinguishable. SimCSE's recipe: make two
# *views* of every $v_i$ by dropout (two random masks), and train each view to recognise
# its partner among the other comparisons of the batch, the **InfoNCE** loss:
#
# $$\mathcal{L}_\text{NCE} = -\frac1n\sum_{i=1}^n \log\frac{\exp\big(\cos(z_i, z'_i)/t\big)}
#   {\sum_{j=1}^n \exp\big(\cos(z_i, z'_j)/t\big)}$$
#
# with $z, z'$ the two views and a temperature $t$. The reward model then minimises
# $\mathcal{L}_\text{BT} + c\,\mathcal{L}_\text{NCE}$ (`RewardConfig.contrastive_coef = c`).
#
# ### Exercise 2 - InfoNCE
#
# `z1` and `z2` have shape `(n, k)`: row $i$ of `z2` is the positive of row $i$ of `z1`,
# every other row a negative. Return the loss above (a scalar, the mean over the rows),
# with cosine similarities. (`F.normalize` and `F.cross_entropy` make it short.)

# %%
def info_nce(z1, z2, temperature):
    """mean over rows i of -log softmax_j(cos(z1_i, z2_j) / temperature) at j = i."""
    ### BEGIN SOLUTION
    sim = F.normalize(z1, dim=-1) @ F.normalize(z2, dim=-1).T
    return F.cross_entropy(sim / temperature, torch.arange(len(z1)))
    ### END SOLUTION


# %%
info_nce_ok = checks_reward.check_info_nce(info_nce)

# %% [markdown]
# The experiment, at the highest noise: the plain members of section 2 against the same
# training with the contrastive term ($c = 0.5$, $t = 0.1$). Besides agreement with gold we
# measure what the term itself optimises: InfoNCE of two dropout views of $v$ on the
# held-out pairs (computed with your `info_nce` once it passes its check). Lower means the
# comparisons are easier to tell apart.

# %%
from moss_lab.preference_strength import CONTRASTIVE_DROPOUT  # noqa: E402
from moss_lab.preference_strength import info_nce as library_info_nce  # noqa: E402

nce_fn = checks_reward.use_if_passed(info_nce, info_nce_ok, library_info_nce)


def held_out_nce(model, tok, pairs, temperature=0.1):
    """InfoNCE of two dropout views of h_chosen - h_rejected on `pairs` (no gradient)."""
    batch = reward_inputs(tok, [p.prompt for p in pairs] * 2,
                          [p.chosen for p in pairs] + [p.rejected for p in pairs])
    with torch.no_grad():
        h = model(**batch, output_hidden_states=True).hidden_states[-1][:, -1]
        v = h[:len(pairs)] - h[len(pairs):]
        torch.manual_seed(0)  # the same dropout masks for every model
        return nce_fn(F.dropout(v, CONTRASTIVE_DROPOUT), F.dropout(v, CONTRASTIVE_DROPOUT),
                      temperature).item()


tau = NOISE[-1]
contrastive = dataclasses.replace(SMALL, contrastive_coef=0.5, contrastive_temperature=0.1)
c_model, c_tok, c_final = train_reward_model(labelled[tau], contrastive, eval_pairs=held_out)
sample = held_out[:256]
for name, (model, tok, final) in [("plain (member 0)", ensembles[tau][0]),
                                  ("plain (member 1)", ensembles[tau][1]),
                                  ("with contrastive", (c_model, c_tok, c_final))]:
    print(f"{name:18s} gold agreement {final['acc_gold']:.3f}   held-out InfoNCE "
          f"{held_out_nce(model, tok, sample):.2f}")
print(f"(InfoNCE of a random guess among {len(sample)}: log {len(sample)} = "
      f"{torch.log(torch.tensor(float(len(sample)))):.2f})")

# %% [markdown]
# What you should see (seeds 0-2): the contrastive model's held-out InfoNCE about 0.25
# against 1.5-2.5 for the plain models (the term does what it optimises: the
# comparisons' representations spread apart), and its agreement with gold within the seed
# spread of plain training (-0.03 to +0.01 against members 0 and 1). Part II reports that contrastive terms help the reward model
# generalise, measured on large models and real data; at this scale, with three epochs,
# a better-separated representation does not by itself order answers better. Measuring
# both, what the extra term optimises and what we actually want, is the habit to keep.
#
# ## Summary
#
# - An ensemble's **preference strength** (mean of $r_c - r_r$) and its **spread** (std)
#   say which pairs are clear, ambiguous or probably mislabelled; in the toy world the
#   strength tracks the gold margin and flags wrong labels well above the base rate.
# - Whether flipping, smoothing or a margin driven by it helps depends on the **precision**
#   of that strength: with a weak ensemble at low noise it flips correct labels.
# - Differences between remedies must be read against the **seed spread** of the plain
#   model; at this scale it is as large as the effects.
# - A contrastive term optimises its own objective visibly; whether that improves the
#   reward is a separate measurement.
#
# **Next:** lab 06 used a reward model in PPO; a reward model trained with these remedies
# goes into the same loop (`moss-lab train-rm --help` lists the options used here).

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. An ensemble gives a pair a strongly negative mean $r_c - r_r$ with a small spread. The pair is
#    - (a) clear: keep it as it is
#    - (b) probably mislabelled: flip it
#    - (c) ambiguous: smooth it
#    - (d) a duplicate
#
# 2. A pair with mean $r_c - r_r$ near 0 and a large spread over the members is
#    - (a) clear
#    - (b) mislabelled
#    - (c) ambiguous: a candidate for smoothing
#    - (d) an error in the data
#
# 3. Flipping driven by a weak ensemble at low label noise
#    - (a) always helps
#    - (b) has no effect
#    - (c) can flip correct labels: its precision decides whether it helps
#    - (d) needs the gold score
#
# 4. InfoNCE over a batch of 64 when every similarity is equal (no information): what is its value (natural log)?
#
# 5. Two remedies differ by 0.02 in agreement with gold. What must you compare that with?
#    - (a) The training loss
#    - (b) The seed spread of plain training
#    - (c) The number of epochs
#    - (d) Nothing: 0.02 is a real gain

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: "b", 2: "c", 3: "c", 4: 4.159, 5: "b"}
### END SOLUTION
score_quiz("11", quiz_answers)
