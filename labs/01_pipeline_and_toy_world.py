# %% [markdown]
# # Lab 01 — The pipeline and the toy world
#
# Large language models are taught to be helpful and harmless with **reinforcement learning from human feedback** (RLHF). This course follows the recipe of MOSS-RLHF ("Secrets of RLHF in Large Language Models", Part I: PPO, Part II: reward modeling) and runs every step of it on a laptop, in a small world where we know the right answer.
#
# In this lab you will:
#
# 1. see the four steps of the pipeline on one page;
# 2. sample the **base model** of the toy world;
# 3. read the **gold score** that says what the world's "humans" really want;
# 4. meet the **simulated annotator** who labels pairs of responses, and see what its noise and its taste for long answers do to the labels.
#
# Nothing here trains a model: the whole notebook runs in well under a minute.

# %% [markdown]
# ## Objectives
#
# After this lab you can:
#
# - name the four steps of RLHF and what each one produces;
# - read the gold score of a toy answer and its components;
# - compute the simulated annotator's $P(A \succ B)$ and say what its noise and length bias do to the labels.
#
# **Time:** about 30 minutes of reading, the exercise and the quiz; the code runs in under a minute.
#
# After each cell that samples or measures something, a **What you should see** note gives the range we measured over five runs of that cell with its seeds shifted by 0 to 4 (0 is the notebook's own run): your output should fall inside it.

# %% [markdown]
# ## 1. The pipeline on one page
#
# ```
#  step 1             step 2                      step 3                    step 4
#  pretrain / SFT     human feedback              reward model              RL with PPO
#  ┌───────────┐      ┌──────────────────────┐    ┌──────────────────┐     ┌────────────────────────────┐
#  │ text      │      │ prompt x             │    │ r_φ(x, y) ∈ ℝ    │     │ maximise                   │
#  │ corpus    │──►π₀─┤ two samples y₁, y₂   ├───►│ trained so that  ├────►│ r_φ(x,y) − β·KL(π ‖ π₀)    │──► π
#  │           │      │ a person says y₁ ≻ y₂│    │ r(chosen) >      │     │ PPO-max tricks keep it     │
#  └───────────┘      └──────────────────────┘    │ r(rejected)      │     │ stable                     │
#                                                  └──────────────────┘     └────────────────────────────┘
# ```
#
# 1. **Pretrain (and supervised fine-tune)** a language model: the *policy* $\pi_0$. It can write answers, good and bad.
# 2. **Collect human feedback**: show a person a prompt $x$ and two answers of the model, and ask which is better. Comparisons are easier and more consistent than absolute grades.
# 3. **Train a reward model** $r_\phi(x, y)$: a network that gives every answer a number, trained so that preferred answers get larger numbers (the Bradley–Terry model, labs 02 and 03).
# 4. **Optimise the policy with reinforcement learning** (PPO) to get a high reward, while a KL penalty keeps it close to $\pi_0$ so that it cannot wander off into text the reward model has never seen (labs 04–08). With prompts $x$ drawn from a prompt set $\mathcal{D}$, the objective averages, over prompts, the expected reward *minus* the KL penalty of that prompt's answer distribution:
#
# $$\max_\pi \; \mathbb{E}_{x \sim \mathcal{D}}\Big[\, \mathbb{E}_{y \sim \pi(\cdot\mid x)}\big[ r_\phi(x, y) \big] \;-\; \beta\, \mathrm{KL}\big(\pi(\cdot\mid x)\,\|\,\pi_0(\cdot\mid x)\big) \Big]$$
#
# (the KL depends on $x$, so it sits inside the average over prompts). This is step 4 in these labs' numbering; InstructGPT numbers the same pipeline from its supervised fine-tuning, so there this RL step is step 3.
#
# Real RLHF is hard to study because we never know what people *really* want: we only see their labels and a reward model's guess. The **toy world** fixes that. It has a *gold score*, the true preference, which we use to **measure** every step, and never to train on directly.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # plain-text progress bars are fine

import matplotlib.pyplot as plt
import torch

from moss_lab import checks, toyworld
from moss_lab.models import load_policy
from moss_lab.sampling import generate
from moss_lab.toyworld import SimulatedAnnotator, gold_score
from transformers.utils import logging as hf_logging

torch.set_num_threads(1)  # tiny models: one thread is fastest, and leaves the other core free
hf_logging.disable_progress_bar()  # quieter output when loading a saved model

# %% [markdown]
# ## 2. The toy world
#
# A user asks about one of 15 topics. An answer is a few short sentences, and every sentence is of one of four kinds:
#
# | kind | example | what it does to quality |
# |---|---|---|
# | fact | *cats purr when they are happy .* | helpful when on topic, confusing when off topic |
# | polite | *happy to help .* | friendly (a polite opening is a plus) |
# | rude | *that is a silly question .* | harmful |
# | filler | *let me think .* | adds length, no content |
#
# Prompts use a simple chat format that both the policy and the reward model see:

# %%
prompts = toyworld.sample_prompts(3, seed=0)
for p in prompts:
    print(repr(p))
print()
print("topics:", ", ".join(toyworld.TOPICS))
print("facts about cats:", toyworld.FACTS["cats"][:2], "...")
print("polite:", toyworld.POLITE[:3], "...")
print("rude:  ", toyworld.RUDE[:3], "...")
print("filler:", toyworld.FILLER[:3], "...")

# %% [markdown]
# **What you should see:** three prompts in the chat format, each ending in `Assistant: ` (the notebook's ask about snow, cats and the ocean), the 15 topics, two facts about cats and three sentences of each other kind. No model is involved yet: the same on every machine.

# %% [markdown]
# ## 3. Sample the base model
#
# The base model (step 1 of the pipeline) is a tiny GPT-2: 2 layers, width 64, about 124k parameters, pretrained on a corpus of answers of *mixed* quality. So it writes answers of mixed quality too — exactly what RLHF starts from.
#
# The package ships it: `load_policy("toy")` copies it into your data home (`$MOSS_LAB_HOME`, by default `~/.cache/moss-lab`) the first time and loads it from there in about a second.

# %%
model, tokenizer = load_policy("toy")
print(f"{model.num_parameters():,} parameters, vocabulary of {len(tokenizer)} words")

samples = generate(model, tokenizer, toyworld.sample_prompts(6, seed=1), max_new_tokens=40, seed=0)
for prompt, response, ended in zip(samples.prompts, samples.responses, samples.ended):
    print(prompt)
    print("   ", response, "" if ended else "   [never ended: no <eos>]")

# %% [markdown]
# **What you should see:** `123,584 parameters, vocabulary of 239 words`, the same on every machine (the package ships this model). Over seeds 0-4, 0 or 1 of the six answers never ends.

# %% [markdown]
# Some answers stay on topic, some drift to other topics, some are rude, and some repeat themselves. `ended` is False when the answer hit the 40-token limit before the model produced the end-of-sequence token `<eos>`.
#
# ## 4. The gold score: what the world's humans really want
#
# `gold_score(prompt, response, ended)` breaks the quality of an answer into four named components, and the **total** is their sum:
#
# $$g(x, y) = \underbrace{h}_{\text{helpfulness}} + \underbrace{s}_{\text{harmlessness}} + \underbrace{c}_{\text{conciseness}} + \underbrace{d}_{\text{degeneracy}}$$
#
# - **helpfulness** $h$: $+1.5, +1.0, +0.5$ for the first, second, third distinct on-topic fact (diminishing returns, at most 3), $-0.75$ per off-topic fact, and $-1$ if there is no on-topic fact at all;
# - **harmlessness** $s$: $+0.5$ for a polite opening, $-1.5$ per rude sentence;
# - **conciseness** $c$: $-0.05$ per word beyond 24 words, $-0.25$ per filler sentence;
# - **degeneracy** $d$: $-1$ per repeated sentence, $-0.25$ per word that is not part of a known sentence, $-2$ if the answer never ended.
#
# The best possible answer opens politely and gives three different on-topic facts, briefly: a total of $3.5$.

# %%
for prompt, response, ended in zip(samples.prompts[:4], samples.responses[:4], samples.ended[:4]):
    g = gold_score(prompt, response, ended)
    parts = "  ".join(f"{k}={v:+.2f}" for k, v in g.as_dict().items())
    print(f"{response[:70]!r}{'...' if len(response) > 70 else ''}\n    {parts}")

# %% [markdown]
# **What you should see:** four totals between about $-6.5$ and $+3$ (seeds 0-4; the notebook's own: $+0.85, +1.75, -6.30, -0.75$), each the sum of its four components. The gold score has no randomness: the same answer always gets the same score, on any machine.

# %% [markdown]
# Now a bigger sample: 512 answers of the base model. How good is it, and which components cost it the most points?

# %%
prompts = toyworld.sample_prompts(512, seed=2)
base = generate(model, tokenizer, prompts, max_new_tokens=40, seed=2)
golds = [gold_score(p, r, e) for p, r, e in zip(base.prompts, base.responses, base.ended)]
totals = [g.total for g in golds]

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
ax1.hist(totals, bins=30, color="tab:blue", alpha=0.8)
ax1.axvline(sum(totals) / len(totals), color="k", ls="--", label=f"mean {sum(totals) / len(totals):.2f}")
ax1.axvline(3.5, color="tab:green", ls=":", label="best possible (3.5)")
ax1.set_xlabel("gold score (total)")
ax1.set_ylabel("number of answers")
ax1.set_title("The base model's answers")
ax1.legend()

names = ["helpfulness", "harmlessness", "conciseness", "degeneracy"]
means = [sum(getattr(g, n) for g in golds) / len(golds) for n in names]
ax2.barh(names, means, color=["tab:green" if m > 0 else "tab:red" for m in means])
ax2.axvline(0, color="k", lw=0.8)
ax2.set_xlabel("mean value")
ax2.set_title("Gold score components (mean)")
plt.tight_layout()
plt.show()

print(f"ended with <eos>: {sum(base.ended) / len(base.ended):.0%}   "
      f"grammatical: {sum(map(toyworld.is_grammatical, base.responses)) / len(base.responses):.0%}")


# %% [markdown]
# **What you should see** (seeds 0-4): a mean gold score of $-0.76$ to $-0.49$ (standard deviation 2.3-2.7), half the answers (49-55%) below 0 and only 2-4% at 3 or more; the best answers reach 3.0-3.5 and the worst $-11$ to $-21$. Component means: helpfulness $+0.45$ to $+0.68$, the only positive bar; harmlessness $-0.32$ to $-0.40$; conciseness $-0.20$ to $-0.25$; degeneracy $-0.52$ to $-0.76$, the largest cost. Then `ended with <eos>: 95-97%`, `grammatical: 90-92%`.

# %% [markdown]
# The spread is wide: a few answers are near the best possible score, many lose points for off-topic facts, repetitions or rudeness. That spread is what makes RLHF possible — if the model can sometimes write good answers, feedback can teach it to write them more often.
#
# ## 5. The simulated annotator
#
# In real RLHF, people compare pairs of answers. Here a **simulated annotator** does it, and like people it is noisy and can be biased. For a prompt and two answers $A$ and $B$ with gold scores $g_A, g_B$ and lengths (in words) $\ell_A, \ell_B$, it picks $A$ with probability
#
# $$P(A \succ B) = \sigma\!\left(\frac{g_A - g_B + b\,(\ell_A - \ell_B)}{\tau}\right), \qquad \sigma(z) = \frac{1}{1 + e^{-z}},$$
#
# where $\tau$ is the **noise** (a temperature: $\tau \to 0$ is a perfect annotator, large $\tau$ is a coin flip) and $b$ is a **length bias** ($b > 0$: longer answers look better to this annotator, a known habit of human raters).
#
# This is the Bradley–Terry model that lab 02 studies in depth.
#
# ### Exercise 1: the annotator's probability
#
# Write the formula above as a torch function. The inputs `gold_a, gold_b, len_a, len_b` are tensors of the same shape (one entry per pair); `noise` and `length_bias` are numbers.

# %%
def annotator_prob(gold_a, gold_b, len_a, len_b, noise, length_bias):
    """P(A preferred over B) for each pair: sigmoid((g_A - g_B + b (len_A - len_B)) / noise)."""
    ### BEGIN SOLUTION
    return torch.sigmoid((gold_a - gold_b + length_bias * (len_a - len_b)) / noise)
    ### END SOLUTION


# %%
checks.check_annotator_prob(annotator_prob)

# %% [markdown]
# ### How noisy is the annotator?
#
# We take 600 pairs (two answers of the base model to the same prompt) and let annotators with different noise $\tau$ label them. A label **agrees with gold** when the annotator picked the answer with the higher gold score (pairs with equal gold scores are skipped).
#
# Two numbers per noise level: the agreement of one round of labels we actually drew, and the agreement we *expect*, the average over pairs of $P(\text{label agrees with gold}) = \sigma(|g_A - g_B| / \tau)$.

# %%
pair_prompts = toyworld.sample_prompts(600, seed=3)
draw = generate(model, tokenizer, pair_prompts + pair_prompts, max_new_tokens=40, seed=3)
n = len(pair_prompts)
pairs = [(pair_prompts[i], draw.responses[i], draw.responses[n + i], draw.ended[i], draw.ended[n + i])
         for i in range(n)]
# keep the pairs where gold has an opinion
pairs = [p for p in pairs if gold_score(p[0], p[1], p[3]).total != gold_score(p[0], p[2], p[4]).total]
print(f"{len(pairs)} pairs with a gold preference")


def agreement(annotator, pairs):
    """(drawn, expected) fraction of labels that agree with the gold score."""
    drawn = expected = 0.0
    for prompt, a, b, ended_a, ended_b in pairs:
        a_is_better = gold_score(prompt, a, ended_a).total > gold_score(prompt, b, ended_b).total
        p_a = annotator.prob_a(prompt, a, b, ended_a, ended_b)
        expected += p_a if a_is_better else 1 - p_a
        drawn += annotator.prefers_a(prompt, a, b, ended_a, ended_b) == a_is_better
    return drawn / len(pairs), expected / len(pairs)


noises = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
results = [agreement(SimulatedAnnotator(noise=tau, seed=0), pairs) for tau in noises]
for tau, (drawn, expected) in zip(noises, results):
    print(f"noise {tau:4}: agreement with gold {drawn:.3f} (expected {expected:.3f})")

plt.figure(figsize=(5.5, 3.6))
plt.plot(noises, [r[1] for r in results], "o-", label="expected")
plt.plot(noises, [r[0] for r in results], "x", ms=9, label="one draw of labels")
plt.axhline(0.5, color="gray", ls=":", label="coin flip")
plt.xlabel("annotator noise τ")
plt.ylabel("agreement with gold")
plt.title("A noisier annotator agrees less with the truth")
plt.legend()
plt.show()


# %% [markdown]
# **What you should see** (seeds 0-4): 582-590 pairs with a gold preference (of 600). Expected agreement 1.000 at $\tau = 0$, then 0.96-0.97, 0.92-0.93, **0.84-0.87 at $\tau = 1$**, 0.74-0.77, 0.65-0.66 and 0.58-0.59 at $\tau = 8$; one draw of labels lands within 0.04 of the expected value (the crosses sit on the line).

# %% [markdown]
# At $\tau = 0$ the annotator always agrees with gold; as $\tau$ grows it drifts towards a coin flip. The default annotator of these labs uses $\tau = 1$: it agrees with gold on most pairs but not all, like real labellers (InstructGPT reported about 73% agreement between its human labellers).
#
# A reward model trained on these labels can only learn what the labels say. Keep the number at $\tau = 1$ in mind: in lab 03 we compare a reward model's agreement with gold against it.
#
# ### What a length bias does
#
# Now the annotator also likes long answers: $b > 0$. We count how often the label goes to the **longer** answer of the pair, and how often it still agrees with gold.

# %%
def length_stats(annotator, pairs):
    """(fraction of labels picking the longer answer, agreement with gold)."""
    longer = agree = counted = 0
    for prompt, a, b, ended_a, ended_b in pairs:
        if len(a.split()) == len(b.split()):
            continue
        counted += 1
        picks_a = annotator.prefers_a(prompt, a, b, ended_a, ended_b)
        longer += picks_a == (len(a.split()) > len(b.split()))
        agree += picks_a == (gold_score(prompt, a, ended_a).total > gold_score(prompt, b, ended_b).total)
    return longer / counted, agree / counted


biases = [0.0, 0.05, 0.1, 0.2, 0.4]
stats = [length_stats(SimulatedAnnotator(noise=1.0, length_bias=b, seed=0), pairs) for b in biases]
for b, (longer, agree) in zip(biases, stats):
    print(f"length bias {b:4}: picks the longer answer {longer:.0%}, agrees with gold {agree:.0%}")

plt.figure(figsize=(5.5, 3.6))
plt.plot(biases, [s[0] for s in stats], "o-", color="tab:orange", label="picks the longer answer")
plt.plot(biases, [s[1] for s in stats], "o-", color="tab:blue", label="agrees with gold")
plt.xlabel("length bias b (per word)")
plt.ylabel("fraction of labels")
plt.title("A taste for length crowds out quality (noise τ = 1)")
plt.legend()
plt.show()

# %% [markdown]
# **What you should see** (seeds 0-4): without a bias the labels pick the longer answer 39-47% of the time and agree with gold 83-86%; at $b = 0.1$, 50-58% and 79-82%; at $b = 0.2$, 61-68% and 71-74%; at $b = 0.4$, 75-81% and 60-65%. The two lines cross between $b = 0.2$ and $b = 0.4$.

# %% [markdown]
# Without a bias the annotator picks the longer answer *less* than half of the time: the base model's long answers tend to be worse (repetitions, off-topic facts). A bias of a tenth of a point per word looks harmless, but then a 15-word gap is worth as much as the best on-topic fact (1.5 points). The labels drift towards "longer is better" and away from the truth.
#
# Why this matters for the rest of the pipeline: the reward model learns the bias from the labels (lab 03), and PPO then *optimises* it (labs 06–08). MOSS-RLHF Part I reports exactly this pattern: as PPO training goes wrong, responses get longer and the reward keeps rising while real quality does not. Here is one pair where the bias flips the verdict:

# %%
biased = SimulatedAnnotator(noise=1.0, length_bias=0.2)
fair = SimulatedAnnotator(noise=1.0, length_bias=0.0)
for prompt, a, b, ended_a, ended_b in pairs:
    p_fair, p_biased = fair.prob_a(prompt, a, b, ended_a, ended_b), biased.prob_a(prompt, a, b, ended_a, ended_b)
    if p_fair < 0.3 and p_biased > 0.7:
        print(prompt)
        print(f"  A ({len(a.split())} words, gold {gold_score(prompt, a, ended_a).total:+.2f}): {a}")
        print(f"  B ({len(b.split())} words, gold {gold_score(prompt, b, ended_b).total:+.2f}): {b}")
        print(f"  P(A preferred): fair annotator {p_fair:.2f}, length-biased annotator {p_biased:.2f}")
        break

# %% [markdown]
# **What you should see:** one pair where the longer answer has the lower gold score; the fair annotator gives it at most 0.3 and the biased one at least 0.7 (that is how the pair was picked). Over seeds 0-4: 0.07-0.24 against 0.72-0.97.

# %% [markdown]
# ## Summary
#
# - RLHF has four steps: pretrain a policy, collect comparisons, fit a reward model to them, and optimise the policy against the reward model with PPO under a KL penalty.
# - The toy world's **gold score** is the truth we measure with; it has four named components.
# - The **simulated annotator** labels pairs with $P(A \succ B) = \sigma\big((g_A - g_B + b\,\Delta\ell)/\tau\big)$: its noise $\tau$ caps how much the labels agree with gold, and a length bias $b$ teaches "longer is better".
#
# **Next:** lab 02 turns "A is better than B" into a number for every answer — the Bradley–Terry model and its loss.

# %% [markdown]
# ## Recap quiz
#
# Answer in the cell below (a letter, or a number where a number is asked) and run it: each answer is checked, and a wrong one gets a hint.
#
# 1. Why does step 2 of RLHF ask people to compare two answers instead of grading one?
#    - (a) PPO can only use rewards of 0 or 1
#    - (b) Comparisons are easier for people to make, and more consistent between people
#    - (c) A comparison needs no prompt
#    - (d) Grades cannot be stored as numbers
#
# 2. The annotator prefers A with probability $\sigma\big((g_A - g_B + b\,(\ell_A - \ell_B))/\tau\big)$. With $g_A - g_B = 1$, $b = 0.1$ per word, A 10 words shorter than B and $\tau = 1$: what is $P(A \succ B)$?
#
# 3. What does a larger annotator noise $\tau$ do?
#    - (a) It makes the labels favour longer answers
#    - (b) It changes the gold score of every answer
#    - (c) It lowers the ceiling on how often the labels agree with gold
#    - (d) Nothing, once there are enough labels
#
# 4. In step 4 the policy maximises $r_\phi(x, y) - \beta\,\mathrm{KL}$. The KL is measured to what?
#    - (a) The initial policy $\pi_0$
#    - (b) The reward model
#    - (c) The gold score
#    - (d) The simulated annotator
#
# 5. The annotator has a length bias ($b > 0$). What happens further down the pipeline?
#    - (a) Nothing: PPO never sees the labels
#    - (b) PPO removes the bias, because it maximises the gold score
#    - (c) Only the base model changes
#    - (d) The reward model learns the bias and PPO optimises it: answers grow longer while their quality does not

# %%
from moss_lab.quiz import score_quiz

# your answers: a letter ("a" to "d"), or a number where a number is asked
quiz_answers = {1: None, 2: None, 3: None, 4: None, 5: None}
### BEGIN SOLUTION
quiz_answers = {1: "b", 2: 0.5, 3: "c", 4: "a", 5: "d"}
### END SOLUTION
score_quiz("01", quiz_answers)
