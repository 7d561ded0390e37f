# %% [markdown]
# # Lab 03 — Training a reward model
#
# In lab 02 the "reward model" was a table of five numbers. A real reward model has to score answers it has never seen, so it is a network: the base language model with its next-word head replaced by a **scalar head**. It reads the prompt and the answer and outputs one number, $r_\phi(x, y)$, and it is trained with the Bradley–Terry loss you wrote in lab 02:
#
# $$\mathcal{L}(\phi) = -\frac1N\sum_{i=1}^N \log\sigma\big(r_\phi(x_i, y_{c,i}) - r_\phi(x_i, y_{r,i})\big).$$
#
# In this lab you will:
#
# 1. generate toy comparisons (two answers of the base model per prompt, labelled by the simulated annotator of lab 01);
# 2. train a reward model and measure it two ways: against the **labels** and against the **gold** score;
# 3. see what **label noise** and a **length bias** of the annotator do to the reward model;
# 4. try the remedies of MOSS-RLHF Part II side by side: label smoothing, an adaptive margin, label flipping;
# 5. plot reward against gold score.
#
# Every training run here is deliberately small (800 pairs, 3 epochs, about 10 seconds on a laptop core), so the whole notebook takes 2–3 minutes. Small runs are noisy: differences of a few points of accuracy are within the noise. `benchmarks/reward_model.py` trains a bigger one.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - train a reward model on simulated comparisons and measure it against labels and against gold;
# - say what label noise and a length bias do to a reward model;
# - write the label-smoothed and margin losses and read a comparison of remedies against its noise.
#
# **Time:** about 45 minutes of reading, exercises and the quiz; the code runs in 2–3 minutes.
#
# After each cell that trains or measures something, a **What you should see** note gives the range we measured over five runs of that cell with its seeds shifted by 0 to 4 (0 is the notebook's own run): your output should fall inside it. These numbers are for the reward-model defaults of `RewardConfig` (the 2-layer toy base, frozen embeddings) that this notebook uses.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # before tqdm is imported

import dataclasses
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from transformers.utils import logging as hf_logging

from moss_lab import checks, toyworld
from moss_lab.models import load_policy
from moss_lab.preferences import gold_agreement, toy_pairs
from moss_lab.reward import RewardConfig, evaluate_reward_model, train_reward_model
from moss_lab.scoring import score
from moss_lab.toyworld import SimulatedAnnotator, gold_score

torch.set_num_threads(1)  # tiny models: one thread is fastest
# quieter output: the new scalar head is *meant* to be missing from the base model
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()

# %% [markdown]
# ## 1. Toy comparisons
#
# `toy_pairs` samples two answers of the base model for each prompt and asks the simulated annotator (noise $\tau = 1$, no length bias) which is better. Each record is in the standard form `prompt / chosen / rejected` used by trl and most preference datasets.
#
# We make 1200 pairs: 800 to train on and 400 **held out** to measure the reward model on answers it never saw in training.

# %%
policy, tokenizer = load_policy("toy")
annotator = SimulatedAnnotator(noise=1.0, seed=0)
pairs = toy_pairs(policy, tokenizer, 1200, annotator, seed=0)
train_pairs, held_out = pairs[:800], pairs[800:]

p = train_pairs[0]
print("prompt:  ", p.prompt)
print("chosen:  ", p.chosen)
print("rejected:", p.rejected)
print()
print(f"the annotator's labels agree with gold on {gold_agreement(train_pairs):.1%} of the training pairs")


# %% [markdown]
# **What you should see** (seeds 0-4; the notebook uses 0): one pair with its prompt, then labels that agree with gold on 81-87% of the training pairs (85.0% in the notebook's run).

# %% [markdown]
# Keep that last number in mind: it is what the labels themselves know about the truth.
#
# Later we relabel **the same answers** with other annotators (noisier, or fond of long answers), so that only the labels change between experiments:

# %%
def relabel(pairs, annotator):
    """The same answer pairs, each labelled again by `annotator` (chosen/rejected may swap)."""
    out = []
    for p in pairs:
        keep = annotator.prefers_a(p.prompt, p.chosen, p.rejected, p.chosen_ended, p.rejected_ended)
        out.append(p if keep else dataclasses.replace(
            p, chosen=p.rejected, rejected=p.chosen,
            chosen_ended=p.rejected_ended, rejected_ended=p.chosen_ended))
    return out


# %% [markdown]
# ## 2. Measuring a reward model
#
# A reward model orders a pair correctly when $r(x, y_c) > r(x, y_r)$. Its **accuracy** is the fraction of pairs it orders correctly.
#
# ### Exercise 1: pairwise accuracy
#
# `r_chosen` and `r_rejected` are 1-D tensors of rewards. Return the fraction of pairs with $r_c > r_r$ (a tie counts as a miss), as a Python float or a 0-d tensor.

# %%
def pairwise_accuracy(r_chosen, r_rejected):
    """Fraction of pairs where the chosen answer gets the strictly higher reward."""
    ### BEGIN SOLUTION
    return (r_chosen > r_rejected).float().mean()
    ### END SOLUTION


# %%
checks.check_pairwise_accuracy(pairwise_accuracy)

# %% [markdown]
# In the toy world we can measure accuracy against two references:
#
# - **accuracy against the labels** (`acc_labels`): does the model agree with the annotator? This is all we could measure with real human data.
# - **accuracy against gold** (`acc_gold`): does the model order the two answers the way the gold score does? This is what we actually care about.
#
# The labels are noisy, so `acc_labels` is capped by the annotator's own consistency; `acc_gold` is not: a reward model that averages over many noisy labels can agree with the truth *more* often than any single label does.
#
# ## 3. Train the reward model
#
# `train_reward_model` initialises the reward model from the base model (as MOSS-RLHF does: the network already knows the language), trains it on the pairs, and evaluates it on the held-out pairs after every epoch. With a `run_dir` it writes `config.json` and one JSON line of metrics per step to `metrics.jsonl`, the same record the app and the CLI (`moss-lab train-rm`) produce. We use a temporary folder: nothing is written into the repository.

# %%
SMALL = RewardConfig(epochs=3, batch_size=64, lr=3e-3, warmup_steps=5)  # ~10 s per run on one core
run_dir = Path(tempfile.mkdtemp(prefix="lab03-")) / "baseline"

reward_model, rm_tokenizer, final = train_reward_model(train_pairs, SMALL, run_dir=run_dir, eval_pairs=held_out)
print(f"trained in {final['seconds']:.0f} s ({final['steps']} steps)")
print(f"held-out accuracy against the labels: {final['acc_labels']:.3f}")
print(f"held-out accuracy against gold:       {final['acc_gold']:.3f}")
print(f"(the held-out labels agree with gold on {gold_agreement(held_out):.3f})")

# %% [markdown]
# **What you should see** (seeds 0-4): 39 steps, about 10 s on a free core (more on a busy machine); held-out accuracy 0.60-0.68 against the labels and 0.66-0.71 against gold (0.678 and 0.699 in the notebook's run), with the held-out labels at 0.835-0.885. Against gold is higher than against the labels in every run, by 0.02-0.06.

# %%
records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
steps = [r for r in records if "loss" in r]
evals = [r for r in records if "eval/acc_gold" in r]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.plot([r["step"] for r in steps], [r["loss"] for r in steps], alpha=0.8)
ax1.axhline(torch.log(torch.tensor(2.0)), color="gray", ls=":", label="log 2 (a coin flip)")
ax1.set_xlabel("step")
ax1.set_ylabel("training loss")
ax1.set_title("Bradley–Terry loss")
ax1.legend()
ax2.plot([r["step"] for r in steps], [r["train/accuracy"] for r in steps], alpha=0.5, label="train batch, vs labels")
ax2.plot([r["step"] for r in evals], [r["eval/acc_labels"] for r in evals], "o-", label="held out, vs labels")
ax2.plot([r["step"] for r in evals], [r["eval/acc_gold"] for r in evals], "s-", label="held out, vs gold")
ax2.set_xlabel("step")
ax2.set_ylabel("accuracy")
ax2.set_title("Accuracy")
ax2.legend()
plt.tight_layout()
plt.show()


# %% [markdown]
# **What you should see** (seeds 0-4): a noisy loss curve from 0.67-0.73 on the first step (near the dotted $\log 2$) down to an average of 0.53-0.60 over the third epoch; the training-batch accuracy rising from about 0.60 in the first epoch to 0.69-0.73 in the third; three held-out points per curve, 0.64-0.71 against gold and 0.60-0.68 against the labels, moving by at most 0.025 from one epoch to the next.

# %% [markdown]
# The loss starts at $\log 2 \approx 0.69$: the new head outputs nearly the same reward for every answer, so every pair is a coin flip. Accuracy climbs above chance within the first epoch.
#
# ### Reward against gold
#
# A scatter of the reward of every held-out answer against its gold score shows what the model has learned. (Rewards are only defined up to a constant — lab 02 — so look at the trend, not the level.)

# %%
def scores_and_gold(model, tok, pairs):
    """Rewards, gold scores and lengths of every answer in `pairs` (chosen and rejected)."""
    prompts = [p.prompt for p in pairs] * 2
    answers = [p.chosen for p in pairs] + [p.rejected for p in pairs]
    ended = [p.chosen_ended for p in pairs] + [p.rejected_ended for p in pairs]
    rewards = score(model, tok, prompts, answers)
    gold = torch.tensor([gold_score(q, a, e).total for q, a, e in zip(prompts, answers, ended)])
    length = torch.tensor([float(len(a.split())) for a in answers])
    return rewards, gold, length


def correlation(x, y):
    return torch.corrcoef(torch.stack([x, y]))[0, 1].item()


rewards, gold, length = scores_and_gold(reward_model, rm_tokenizer, held_out)
plt.figure(figsize=(5.5, 4))
plt.scatter(gold, rewards, s=8, alpha=0.4)
plt.xlabel("gold score")
plt.ylabel("reward model score")
plt.title(f"Reward vs gold on held-out answers (correlation {correlation(gold, rewards):.2f})")
plt.show()


# %% [markdown]
# **What you should see** (seeds 0-4): a cloud rising from left to right with a correlation of 0.48-0.59 in the title (0.58 in the notebook's run).

# %% [markdown]
# The reward rises with the gold score, but loosely: this small model, trained for seconds on 800 noisy labels, is a rough proxy of the truth. That gap between proxy and truth is exactly what PPO will exploit in lab 08 (reward hacking).
#
# ## 4. What label noise does
#
# Same answers, three annotators: a perfect one ($\tau = 0$), ours ($\tau = 1$) and a noisy one ($\tau = 3$). We train one reward model on each and measure all three against gold on the same held-out pairs.

# %%
def train_and_measure(pairs, config=SMALL, **overrides):
    """Train a reward model on `pairs`; return (model, tokenizer, held-out metrics)."""
    config = dataclasses.replace(config, **overrides)
    # eval_pairs=[]: no evaluation after every epoch (faster); we measure once at the end
    model, tok, _ = train_reward_model(pairs, config, eval_pairs=[])
    return model, tok, evaluate_reward_model(model, tok, held_out)


noise_runs = {}
for tau in [0.0, 1.0, 3.0]:
    labelled = train_pairs if tau == 1.0 else relabel(train_pairs, SimulatedAnnotator(noise=tau, seed=1))
    final_tau = final if tau == 1.0 else train_and_measure(labelled)[2]  # tau = 1 is the baseline above
    noise_runs[tau] = (gold_agreement(labelled), final_tau["acc_gold"])
    print(f"noise {tau}: labels agree with gold {noise_runs[tau][0]:.3f}   "
          f"reward model agrees with gold {noise_runs[tau][1]:.3f}")

# %% [markdown]
# **What you should see** (seeds 0-4): labels that agree with gold on 1.000, 0.81-0.87 and 0.66-0.71 of the pairs at $\tau = 0, 1, 3$; reward models at 0.68-0.71, 0.66-0.71 and 0.62-0.71. Per seed, the $\tau = 0$ model is within 0.02 of the $\tau = 1$ one, and the $\tau = 3$ model is 0 to 0.07 below it (0.03 on average).

# %%
taus = list(noise_runs)
x = torch.arange(len(taus))
plt.figure(figsize=(5.5, 3.6))
plt.bar(x - 0.2, [noise_runs[t][0] for t in taus], width=0.4, label="training labels")
plt.bar(x + 0.2, [noise_runs[t][1] for t in taus], width=0.4, label="reward model (held out)")
plt.xticks(x, [f"τ = {t}" for t in taus])
plt.ylim(0.4, 1.0)
plt.axhline(0.5, color="gray", ls=":")
plt.ylabel("agreement with gold")
plt.title("Label noise and reward-model quality (800 pairs)")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see:** the numbers above as bars: the label bars fall from 1.0 to about 0.7, while the reward-model bars stay between 0.62 and 0.71.

# %% [markdown]
# Two regimes show up:
#
# - From $\tau = 0$ to $\tau = 1$ the reward model barely changes, although the labels lose about 15 points of agreement with gold. With only 800 pairs, this small model (not the labels) is the bottleneck, and its errors are its own. (The difference between those two bars is within the noise of one run.)
# - At $\tau = 3$ the labels become the bottleneck: about a third of them are wrong, and the reward model is weaker: by 0.03 on average over five seeds, but by anything from 0 to 0.07 in one run, so a single run may not show it.
#
# More data lets a model average label noise away (the Bradley–Terry fit of lab 02 recovered the right ranking from noisy verdicts), but at a fixed budget of labels, label quality sets a ceiling on reward-model quality. This is why MOSS-RLHF Part II spends a whole paper on noisy and ambiguous preference data.
#
# ## 5. What a length bias does
#
# Now an annotator with noise $\tau = 1$ **and** a length bias $b = 0.2$ per word (lab 01). We train on its labels and compare with the baseline: how much does each reward model's score depend on the length of the answer?

# %%
biased_pairs = relabel(train_pairs, SimulatedAnnotator(noise=1.0, length_bias=0.2, seed=1))
biased_model, biased_tok, biased_final = train_and_measure(biased_pairs)
biased_rewards, _, _ = scores_and_gold(biased_model, biased_tok, held_out)

print(f"labels agree with gold: fair {gold_agreement(train_pairs):.3f}, length-biased {gold_agreement(biased_pairs):.3f}")
print(f"reward model vs gold:   fair {final['acc_gold']:.3f}, length-biased {biased_final['acc_gold']:.3f}")
print(f"correlation with length: gold {correlation(gold, length):+.2f}, "
      f"fair RM {correlation(rewards, length):+.2f}, length-biased RM {correlation(biased_rewards, length):+.2f}")

fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=False)
for ax, r, name in zip(axes, [rewards, biased_rewards], ["fair annotator", "length-biased annotator (b = 0.2)"]):
    ax.scatter(length, r, s=8, alpha=0.4)
    ax.set_xlabel("answer length (words)")
    ax.set_ylabel("reward")
    ax.set_title(f"RM trained on the {name}\ncorrelation with length {correlation(r, length):+.2f}")
plt.tight_layout()
plt.show()


# %% [markdown]
# **What you should see** (seeds 0-4): the length-biased labels agree with gold on 0.71-0.75 (fair: 0.81-0.87), and its reward model on 0.54-0.57 (fair: 0.66-0.71). Correlation with length: gold $-0.20$ to $-0.35$, the fair reward model $-0.26$ to $-0.57$, the length-biased one $+0.60$ to $+0.69$: the left cloud slopes down, the right one up.

# %% [markdown]
# The reward model trained on biased labels has learned the bias: its reward grows with length, although the gold score does not. A policy optimised against this reward model will be paid to ramble — the "responses grow longer" symptom MOSS-RLHF Part I watches for during PPO. A bias in the labels becomes a bias in the reward becomes a behaviour of the policy.
#
# ## 6. The Part II remedies, side by side
#
# MOSS-RLHF Part II proposes ways to make reward modelling robust to noisy labels. `RewardConfig` has them as options; the loss is always the Bradley–Terry loss with a twist:
#
# | remedy | option | loss on a pair with gap $d = r_c - r_r$ |
# |---|---|---|
# | none | | $-\log\sigma(d)$ |
# | label smoothing | `label_smoothing=ε` | $-(1-\varepsilon)\log\sigma(d) - \varepsilon\log\sigma(-d)$ |
# | adaptive margin | `adaptive_margin=α` | $-\log\sigma(d - m)$, $\;m = \alpha\,\max(s, 0)$ |
# | label flipping | `flip_fraction=f` | swap chosen/rejected of the fraction $f$ of pairs with the lowest $s$ |
#
# Here $s$ is the **preference strength** of a pair. Part II estimates it with an ensemble of reward models; the library uses the model's own gap $r_c - r_r$, measured once after the first epoch: pairs the model confidently disagrees with are the likely mislabelled ones, and clear pairs get a larger margin.
#
# ### Exercise 2: the label-smoothed loss
#
# Write the label-smoothed Bradley–Terry loss (mean over pairs). The label says "chosen wins" with probability $1 - \varepsilon$ and "rejected wins" with probability $\varepsilon$. Compute it stably (lab 02).

# %%
def smoothed_bt_loss(r_chosen, r_rejected, eps):
    """mean( -(1 - eps) log sigmoid(d) - eps log sigmoid(-d) ),  d = r_chosen - r_rejected."""
    ### BEGIN SOLUTION
    d = r_chosen - r_rejected
    return (-(1 - eps) * F.logsigmoid(d) - eps * F.logsigmoid(-d)).mean()
    ### END SOLUTION


# %%
checks.check_label_smoothing_loss(smoothed_bt_loss)

# %% [markdown]
# ### Exercise 3: the margin loss
#
# Now the margin: a pair must win by at least $m$ before its loss gets small, $-\log\sigma(d - m)$, averaged over pairs. `margin` is a tensor with one entry per pair (the adaptive margin gives clear pairs a larger one).

# %%
def margin_bt_loss(r_chosen, r_rejected, margin):
    """mean( -log sigmoid(r_chosen - r_rejected - margin) ), one margin per pair."""
    ### BEGIN SOLUTION
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()
    ### END SOLUTION


# %%
checks.check_margin_loss(margin_bt_loss)

# %% [markdown]
# Now the experiment: the noisy annotator ($\tau = 3$, its labels agree with gold on only about two thirds of the pairs), and the same 800 answer pairs, trained four ways.

# %%
noisy_pairs = relabel(train_pairs, SimulatedAnnotator(noise=3.0, seed=1))
remedies = {
    "none": {},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "adaptive margin 0.5": {"adaptive_margin": 0.5},
    "flip weakest 20%": {"flip_fraction": 0.2},
}
n_gold = evaluate_reward_model(reward_model, rm_tokenizer, held_out)["n_gold"]  # pairs with a gold verdict
remedy_acc = {}
for name, options in remedies.items():
    if name == "none":  # already trained in section 4
        remedy_acc[name] = noise_runs[3.0][1]
    else:
        remedy_acc[name] = train_and_measure(noisy_pairs, **options)[2]["acc_gold"]
    print(f"{name:22s} reward model agrees with gold on {remedy_acc[name]:.3f} of held-out pairs")

# one standard error of an accuracy measured on n_gold pairs: sqrt(p (1 - p) / n)
errors = [(a * (1 - a) / n_gold) ** 0.5 for a in remedy_acc.values()]
plt.figure(figsize=(6.5, 3.4))
plt.barh(list(remedy_acc), list(remedy_acc.values()), xerr=errors, capsize=4, color="tab:purple", alpha=0.8)
plt.axvline(gold_agreement(noisy_pairs), color="k", ls="--", label="the noisy labels themselves")
plt.xlim(0.5, 0.9)
plt.xlabel("held-out agreement with gold")
plt.title("Remedies for noisy labels (τ = 3, 800 pairs)")
plt.legend(loc="lower right")
plt.gca().invert_yaxis()
plt.show()

# %% [markdown]
# **What you should see** (seeds 0-4; 391-394 held-out pairs with a gold verdict): the noisy labels agree with gold on 0.66-0.71 (the dashed line), and the bars end short of it (in one seed of five, smoothing passed it by 0.005). No remedy 0.62-0.71; label smoothing within 0.025 of it and the adaptive margin within 0.015, either way, inside one standard error; flipping the weakest 20% is 0 to 0.10 worse than no remedy in every seed, never better.

# %% [markdown]
# Read this chart with care. Flipping leans on the model's own judgement of each pair, measured after one epoch; a small model that agrees with gold only about two times in three flips many *correct* labels too, and can end up worse than no remedy — Part II measures preference strength with an ensemble of reward models for that reason. And each bar is **one** short run on 800 pairs and 400 held-out pairs, so its accuracy carries a few points of noise (the error bars show one standard error, about 0.024 for an accuracy of 0.65 on 400 pairs) — differences smaller than that mean nothing. Part II reports consistent but modest gains from these remedies on real data, with reward models of billions of parameters. To see them clearly here, train with more pairs and several seeds (for example with `moss-lab train-rm --noise 3 --label-smoothing 0.1`, or `benchmarks/reward_model.py`), and keep in mind their common idea: **don't let the model trust every label completely.**
#
# ## Summary
#
# - A reward model is the base language model with a scalar head, trained with the Bradley–Terry loss on (chosen, rejected) pairs.
# - Accuracy against labels is all we can see with real data; in the toy world, accuracy against **gold** shows what the model really learned.
# - The reward model inherits the flaws of its labels: noise makes it weaker, a length bias makes it reward length.
# - Part II's remedies (label smoothing, adaptive margin, label flipping) all temper the trust in each label.
#
# **Next:** lab 04 starts step 4, the policy side: from the policy gradient to PPO.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. What is the reward model of this lab?
#    - (a) The base language model with its next-word head replaced by a scalar head, trained with the Bradley-Terry loss
#    - (b) A classifier trained from scratch on the gold score
#    - (c) The policy's log-probability of the answer
#    - (d) A table with one number per answer
#
# 2. Which measurement shows what the reward model really learned?
#    - (a) Its training loss
#    - (b) Its agreement with the labels on the training pairs
#    - (c) The mean reward it gives
#    - (d) Its agreement with the gold score on held-out pairs
#
# 3. The annotator has a length bias. What does the reward model trained on its labels do?
#    - (a) It rewards length too
#    - (b) It ignores length, because the gold score does
#    - (c) It becomes more accurate against gold
#    - (d) It refuses to train
#
# 4. What do label smoothing, the adaptive margin and label flipping have in common?
#    - (a) They make the reward model larger
#    - (b) They do not let the model trust every label completely
#    - (c) They remove the KL penalty
#    - (d) They need the gold score
#
# 5. One standard error of an accuracy of 0.65 measured on 400 held-out pairs, $\sqrt{p(1-p)/n}$?

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: "a", 2: "d", 3: "a", 4: "b", 5: 0.024}
### END SOLUTION
score_quiz("03", quiz_answers)
