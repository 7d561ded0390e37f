"""The recap quizzes of labs 01-12: five questions each, with their answers and the hint
printed after a wrong answer (moss_lab/quiz.py checks them; labs/instructor/ANSWERS.md
explains them). The numbers follow from each lab's own formulas; tests/test_quiz.py
recomputes every one of them with the library or plain Python.
"""
from __future__ import annotations

from moss_lab.quiz import Choice, Number


def choice(text: str, a: str, b: str, c: str, d: str, answer: str, why: str) -> Choice:
    return Choice(text, {"a": a, "b": b, "c": c, "d": d}, answer, why)


QUIZZES: dict[str, list[Choice | Number]] = {
    "01": [
        choice("Why does step 2 of RLHF ask people to compare two answers instead of grading one?",
               "PPO can only use rewards of 0 or 1",
               "Comparisons are easier for people to make, and more consistent between people",
               "A comparison needs no prompt",
               "Grades cannot be stored as numbers",
               "b", "the pipeline's step 2: saying 'A is better than B' is easier and more "
               "consistent than an absolute grade."),
        Number("The annotator prefers A with probability $\\sigma\\big((g_A - g_B + b\\,(\\ell_A - "
               "\\ell_B))/\\tau\\big)$. With $g_A - g_B = 1$, $b = 0.1$ per word, A 10 words "
               "shorter than B and $\\tau = 1$: what is $P(A \\succ B)$?",
               0.5, 0.01, "the length term is 0.1 x (-10) = -1 and cancels the gold gap: "
                          "sigmoid(0)."),
        choice("What does a larger annotator noise $\\tau$ do?",
               "It makes the labels favour longer answers",
               "It changes the gold score of every answer",
               "It lowers the ceiling on how often the labels agree with gold",
               "Nothing, once there are enough labels",
               "c", "tau divides the gold gap: the larger it is, the closer every P(A > B) is "
               "to 1/2, whatever the number of labels."),
        choice("In step 4 the policy maximises $r_\\phi(x, y) - \\beta\\,\\mathrm{KL}$. The KL "
               "is measured to what?",
               "The initial policy $\\pi_0$", "The reward model", "The gold score",
               "The simulated annotator",
               "a", "the penalty keeps the tuned policy close to the model it started from."),
        choice("The annotator has a length bias ($b > 0$). What happens further down the pipeline?",
               "Nothing: PPO never sees the labels",
               "PPO removes the bias, because it maximises the gold score",
               "Only the base model changes",
               "The reward model learns the bias and PPO optimises it: answers grow longer "
               "while their quality does not",
               "d", "the reward model learns what the labels say, flaws included, and PPO "
               "maximises the reward model (MOSS-RLHF Part I saw responses grow longer)."),
    ],
    "02": [
        Number("Bradley-Terry: with $r_A = 2$ and $r_B = 0$, what is $P(A \\succ B)$?",
               0.881, 0.005, "P(A > B) = sigmoid(r_A - r_B)."),
        choice("Add 10 to the score of every answer. What changes?",
               "Every probability $P(A \\succ B)$",
               "Nothing: only differences of scores enter the model",
               "The loss doubles",
               "Only the gradient",
               "b", "sigma(r_A - r_B) depends on the gap only: the level of the scores is "
               "arbitrary, which is why PPO normalises rewards."),
        choice("Why is the loss computed as `-F.logsigmoid(d)` and not "
               "`-torch.log(torch.sigmoid(d))`?",
               "It is faster, with the same values",
               "sigmoid is not differentiable",
               "For a very negative gap, sigmoid(d) underflows to 0 and log 0 = -inf",
               "logsigmoid adds label smoothing",
               "c", "see 'Mind the numerics': the two forms differ once sigmoid(d) rounds to 0."),
        choice("The loss pushes the scores of one pair apart with strength $\\sigma(-d)$, "
               "$d = r_c - r_r$. Which pairs are pushed hardest?",
               "Pairs the model already orders right by a wide gap",
               "Pairs with $d = 0$, always",
               "Every pair equally",
               "Pairs the model orders the wrong way (very negative $d$), mislabelled ones "
               "included",
               "d", "sigma(-d) is the probability of the wrong order: near 1 when d << 0, so "
               "a noisy label keeps pulling at full strength."),
        Number("With label smoothing $\\varepsilon = 0.1$, the loss of one pair is smallest at "
               "a finite gap $d^*$. What is $d^*$?",
               2.197, 0.05, "the smoothed loss is minimal where sigmoid(d) = 1 - eps: d* = "
               "log((1 - eps) / eps)."),
    ],
    "03": [
        choice("What is the reward model of this lab?",
               "The base language model with its next-word head replaced by a scalar head, "
               "trained with the Bradley-Terry loss",
               "A classifier trained from scratch on the gold score",
               "The policy's log-probability of the answer",
               "A table with one number per answer",
               "a", "it reads prompt and answer and outputs one number r(x, y); it never "
               "sees the gold score."),
        choice("Which measurement shows what the reward model really learned?",
               "Its training loss",
               "Its agreement with the labels on the training pairs",
               "The mean reward it gives",
               "Its agreement with the gold score on held-out pairs",
               "d", "labels are noisy (and may be biased): only gold, on pairs the model has "
               "not seen, says whether it learned the truth."),
        choice("The annotator has a length bias. What does the reward model trained on its "
               "labels do?",
               "It rewards length too",
               "It ignores length, because the gold score does",
               "It becomes more accurate against gold",
               "It refuses to train",
               "a", "a reward model inherits the flaws of its labels."),
        choice("What do label smoothing, the adaptive margin and label flipping have in common?",
               "They make the reward model larger",
               "They do not let the model trust every label completely",
               "They remove the KL penalty",
               "They need the gold score",
               "b", "each tempers the trust in a label: smoothing caps it, the margin scales "
               "it by confidence, flipping reverses the least believable ones."),
        Number("One standard error of an accuracy of 0.65 measured on 400 held-out pairs, "
               "$\\sqrt{p(1-p)/n}$?",
               0.024, 0.003, "sqrt(0.65 x 0.35 / 400): differences between bars smaller "
               "than this are noise."),
    ],
    "04": [
        Number("Rewards $(0, 0, 1)$ on three tokens, $\\gamma = 0.9$. What is the return-to-go "
               "$G_0$ of the first token?",
               0.81, 0.005, "G_t = r_t + gamma G_{t+1}: the final reward is discounted twice."),
        choice("What does subtracting a baseline $b$ from the return do to the REINFORCE gradient?",
               "It biases the gradient but lowers its variance",
               "It leaves the gradient unbiased and lowers its variance",
               "It raises the variance",
               "It is needed only for the importance ratio",
               "b", "E[b grad log pi] = 0, so the mean is unchanged, and the noise shrinks."),
        choice("Why does PPO multiply by the ratio $\\pi_\\theta(a)/\\pi_\\text{old}(a)$?",
               "To reuse, for several steps, samples collected by the older policy",
               "To normalise the rewards",
               "To compute the KL penalty",
               "To make the loss positive",
               "a", "importance sampling corrects for the samples coming from pi_old, not "
               "from the policy being updated."),
        Number("Clipped objective $\\min\\big(\\rho A, \\operatorname{clip}(\\rho, 1-\\epsilon, "
               "1+\\epsilon) A\\big)$ with $\\rho = 1.5$, $A = 2$, $\\epsilon = 0.2$?",
               2.4, 0.01, "the clipped term is 1.2 x 2; the min takes the smaller one."),
        choice("What does the clip bound?",
               "The size of every gradient step",
               "The rewards",
               "How far repeated steps on one batch go: a sample's gradient is zero once its "
               "ratio is past $1 \\pm \\epsilon$ in the direction its advantage wants",
               "The norm of the gradient",
               "c", "one big step can still jump past the clip range; the clip removes the "
               "incentive to keep pushing on one batch."),
    ],
    "05": [
        Number("TD error $\\delta_t = r_t + \\gamma V(s_{t+1}) - V(s_t)$ with $r_t = 0$, "
               "$\\gamma = 1$, $V(s_t) = 0.5$, $V(s_{t+1}) = 0.8$?",
               0.3, 0.01, "put the numbers in the formula: the critic's estimate went up by 0.3."),
        choice("GAE with $\\lambda = 0$ is",
               "the one-step TD error $\\delta_t$",
               "the Monte Carlo return minus $V(s_t)$",
               "zero",
               "the reward $r_t$",
               "a", "A_t = delta_t + gamma lambda A_{t+1}: with lambda = 0 only delta_t is left."),
        choice("Raising $\\lambda$ towards 1 makes the advantage",
               "lean more on the critic: more bias, less variance",
               "independent of the rewards",
               "lean less on the critic: less bias, more variance",
               "the same, since only $\\gamma$ matters",
               "c", "lambda = 1 sums the sampled rewards (unbiased, noisy); small lambda "
               "trusts the critic (biased where it is wrong)."),
        choice("What target is the critic trained towards?",
               "$r_t$", "$\\hat A_t$", "$V(s_{t+1})$", "$\\hat A_t + V(s_t)$",
               "d", "the return estimate: the advantage plus the value it was measured against."),
        choice("Whitening advantages with the padding included in the mean and std",
               "is fine, padding is zero",
               "leaves the real tokens not centred: mask the padding",
               "doubles the advantages",
               "only changes the critic",
               "b", "the padding's zeros pull the mean and std: every mean in RLHF code is a "
               "masked mean."),
    ],
    "06": [
        choice("Where is the reward model's score added in the per-token rewards?",
               "On every response token",
               "On the first response token",
               "On the last real response token",
               "On the padding after the response",
               "c", "the score is for the finished response; only the KL penalty is on every "
               "token."),
        choice("The KL term in the per-token reward of token $t$ is",
               "$+\\beta(\\log\\pi - \\log\\pi_\\text{ref})$",
               "$-\\beta(\\log\\pi - \\log\\pi_\\text{ref})$",
               "$-\\beta \\log\\pi$",
               "$+\\beta\\,k_3$",
               "b", "a penalty: the reward goes down where the policy makes a token more "
               "likely than the reference does."),
        Number("$\\log\\pi = -1.0$ and $\\log\\pi_\\text{ref} = -1.5$ on one token. What is "
               "$k_3 = (r - 1) - \\log r$, with $\\log r = \\log\\pi_\\text{ref} - \\log\\pi$?",
               0.1065, 0.003, "log r = -0.5, r = exp(-0.5) = 0.607; k3 = r - 1 - log r."),
        choice("Which KL estimator is unbiased and never negative on a token?",
               "$k_1 = -\\log r$", "$k_2 = \\tfrac12(\\log r)^2$", "$k_3 = (r-1) - \\log r$",
               "none of them",
               "c", "k1 is unbiased but can be negative; k2 is non-negative but biased; k3 is "
               "both."),
        choice("Of the four models of a PPO run for RLHF, which are trained?",
               "The policy and the critic",
               "The policy and the reward model",
               "All four",
               "Only the policy",
               "a", "the reference and the reward model are frozen; the critic learns the values."),
    ],
    "07": [
        Number("Running mean 3, std 2, clip 5: what does `normalise_scores` return for a score "
               "of 17?",
               5.0, 1e-6, "(17 - 3) / 2 = 7, then clipped to [-5, 5]."),
        Number("Value clipping with clip 0.2: the rollout value was $V_\\text{old} = 1.0$ and "
               "the critic now says $V = 1.5$. What is $V_\\text{clip}$?",
               1.2, 1e-6, "V_clip = V_old + clip(V - V_old, -0.2, 0.2)."),
        choice("What does running reward normalisation buy?",
               "A higher gold score in every run",
               "No need for a KL penalty",
               "A smaller reward model",
               "The rewards PPO sees do not depend on the reward model's scale",
               "d", "the x10 reward model gives the same normalised stream as the original."),
        choice("What did MOSS-RLHF see without the KL penalty?",
               "Pattern collapse: reward up, quality and diversity down",
               "Training too slow to move",
               "The critic diverging first",
               "Nothing different",
               "a", "the policy drifts far from the reference and finds the reward model's "
               "blind spots."),
        choice("One seed per arm: a run with one trick off ends 0.1 below PPO-max in gold. You "
               "conclude",
               "the trick helps by 0.1",
               "the trick hurts",
               "nothing yet: seeds alone move the result by about 0.25; run 2-3 seeds per arm",
               "the lab is broken",
               "c", "compare a difference with the seed spread before believing it."),
    ],
    "08": [
        choice("PPO with no KL penalty: what do the proxy (reward model) and gold scores do?",
               "Both rise together",
               "The proxy keeps rising; gold rises, peaks and falls",
               "Both fall",
               "Gold keeps rising; the proxy falls",
               "b", "PPO optimises the proxy and finds its mistakes (Goodhart)."),
        choice("The KL of one response to the reference, the x-axis of this lab's plots, is",
               "the sum over its tokens of $\\log\\pi - \\log\\pi_\\text{ref}$",
               "the mean reward",
               "the number of tokens",
               "$\\log\\pi$ of the last token",
               "a", "by the chain rule of probability, the log-ratio of a sequence is the "
               "sum of its tokens' log-ratios."),
        Number("Gao et al.'s fit $R(d) = d(\\alpha - \\beta_\\text{RL}\\log d)$ with "
               "$\\alpha = 1$, $\\beta_\\text{RL} = 0.5$: at which $d$ does the gold score peak?",
               2.718, 0.02, "set dR/dd = alpha - beta log d - beta to 0: log d = alpha/beta - 1."),
        Number("Adaptive KL: $\\beta = 0.1$, KL 8 against a target of 4, 64 steps, horizon 1000. "
               "What is the new $\\beta$?",
               0.10128, 0.00005, "e = clip(8/4 - 1, -0.2, 0.2) = 0.2; beta (1 + e x 64 / 1000)."),
        choice("Why does the gold score fall while the proxy still rises?",
               "The learning rate is too small",
               "The gold score is noisy",
               "The policy exploits the reward model's mistakes, where it is blind or wrong",
               "The reference model changes",
               "c", "the reward model is a learned, imperfect stand-in; far from the base "
               "model its errors dominate."),
    ],
    "09": [
        choice("The policy that maximises $\\mathbb{E}[r] - "
               "\\beta\\,\\mathrm{KL}(\\pi\\|\\pi_\\text{ref})$ is",
               "the policy that always picks the highest-reward answer",
               "$\\pi_\\text{ref}$ itself",
               "uniform over answers",
               "$\\pi^* \\propto \\pi_\\text{ref}\\, e^{r/\\beta}$",
               "d", "J = -beta KL(pi || pi*) + beta log Z: it is largest at pi = pi*."),
        choice("Why does $\\beta\\log Z(x)$ disappear from the DPO loss?",
               "$Z(x) = 1$",
               "It depends on the prompt only, so it cancels in $r(x, y_w) - r(x, y_l)$",
               "It is dropped as an approximation",
               "$\\beta = 0$",
               "b", "Bradley-Terry uses the difference of two rewards for the same prompt."),
        Number("At the first step the policy equals the reference. What is the DPO loss "
               "(natural log) on any pair?",
               0.693, 0.01, "both implicit rewards are 0: -log sigmoid(0) = log 2."),
        choice("Why was PPO above DPO at the same KL in this lab?",
               "PPO samples from its current policy and gets feedback on what it now writes; "
               "DPO only sees fixed pairs of base-model samples",
               "DPO has no reference model",
               "PPO used the gold score",
               "DPO's loss has a bug",
               "a", "offline against online: DPO gets no feedback on its own new responses."),
        choice("A smaller $\\beta$ in DPO",
               "keeps the policy closer to the reference",
               "lets the policy move further from the reference",
               "has no effect on the policy",
               "removes the need for the reference",
               "b", "pi* = pi_ref e^{r/beta}: a small beta reweights the reference strongly."),
    ],
    "10": [
        choice("GRPO's advantage of a response is",
               "its reward minus the critic's value",
               "its reward",
               "its reward standardised within its group: (r - group mean) / group std",
               "the mean reward of the other responses",
               "c", "GRPO replaces the critic with statistics of G responses to the same prompt."),
        Number("RLOO with $k = 4$ responses to one prompt, rewards $(1, 2, 3, 6)$: what is the "
               "baseline of the first response?",
               3.667, 0.01, "the mean reward of the other k - 1 responses: (2 + 3 + 6) / 3."),
        Number("The KL of best-of-$n$ to the base model is $\\log n - (n-1)/n$. For $n = 8$?",
               1.204, 0.01, "log 8 - 7/8 = 2.079 - 0.875."),
        choice("What do GRPO and RLOO save compared with PPO?",
               "The reward model",
               "Sampling",
               "The reference model",
               "The critic, a second network as large as the policy",
               "d", "a group baseline does the critic's job when the reward is one number per "
               "response."),
        choice("What does best-of-$n$ cost?",
               "$n$ times the sampling, at every use, forever",
               "One training run, then nothing",
               "A critic",
               "Nothing",
               "a", "no gradient step, but the trained methods pay once and best-of-n pays per "
               "answer."),
    ],
    "11": [
        choice("An ensemble gives a pair a strongly negative mean $r_c - r_r$ with a small "
               "spread. The pair is",
               "clear: keep it as it is",
               "probably mislabelled: flip it",
               "ambiguous: smooth it",
               "a duplicate",
               "b", "the members agree, confidently, that the 'rejected' answer is better."),
        choice("A pair with mean $r_c - r_r$ near 0 and a large spread over the members is",
               "clear", "mislabelled", "ambiguous: a candidate for smoothing", "an error in the "
               "data",
               "c", "the members disagree with each other: no confident order."),
        choice("Flipping driven by a weak ensemble at low label noise",
               "always helps",
               "has no effect",
               "can flip correct labels: its precision decides whether it helps",
               "needs the gold score",
               "c", "with few wrong labels, most suspects a weak ensemble picks are right labels."),
        Number("InfoNCE over a batch of 64 when every similarity is equal (no information): "
               "what is its value (natural log)?",
               4.159, 0.05, "the softmax is uniform, so -log(1/64) = log 64."),
        choice("Two remedies differ by 0.02 in agreement with gold. What must you compare that "
               "with?",
               "The training loss",
               "The seed spread of plain training",
               "The number of epochs",
               "Nothing: 0.02 is a real gain",
               "b", "at this scale the seed spread is as large as the effects."),
    ],
    "12": [
        Number("A judge prefers policy A on 60 of N = 100 prompts (no ties). The normal "
               "approximation's 95% half-width is $1.96\\sqrt{p(1-p)/N}$: what is it?",
               0.096, 0.004, "p = 0.6: 1.96 x sqrt(0.24 / 100) = 1.96 x 0.049."),
        choice("To halve the width of a win rate's 95% interval you need",
               "twice the judgements", "four times the judgements",
               "half the judgements", "the same judgements, bootstrapped more often",
               "b", "the width shrinks like 1/sqrt(N)."),
        Number("On an Elo board policy A is 191 points above policy B. What win rate of A "
               "over B does that predict?",
               0.75, 0.01, "P = 1 / (1 + 10^(-191/400)): 400 points are 10:1 odds."),
        choice("The reward model's board puts best-of-8 level with PPO; the gold board puts it "
               "lower. Why can the reward model's board not settle it?",
               "It has fewer judgements",
               "Best-of-8 picked its answers by that same reward model, so that judge is "
               "biased towards it",
               "Elo ratings cannot compare sampling methods",
               "The gold score is noisier",
               "b", "a policy optimised against a judge looks good to that judge: evaluate "
               "with another one (gold, people)."),
        choice("Why does BLEU against one reference answer track the gold score so weakly?",
               "It is computed on tokens, not words",
               "It rewards overlap with one phrasing, while many different answers are "
               "equally good",
               "It needs several GPUs",
               "It ignores the prompt's topic words",
               "b", "n-gram overlap measures closeness to one reference, not quality."),
    ],
}
