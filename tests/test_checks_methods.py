"""The lab 09-10 checkers (moss_lab.checks_methods): correct answers pass (written
independently of moss_lab.methods, in other but equivalent forms, with the reference's
log-probs detached), plausible wrong answers fail (sign errors, a missing beta, population
vs sample std, k instead of k - 1, the group mean including the sample itself), stubs
report 'not implemented', and nothing a learner writes makes a checker raise.
"""
import math

import torch
import torch.nn.functional as F

from moss_lab import checks_methods as cm


def not_implemented(*args):
    raise NotImplementedError


def crashes(*args):
    raise IndexError("oops")


def verdicts(out: str) -> tuple[int, int, int]:
    return out.count("✅"), out.count("❌"), out.count("Not implemented yet")


# ---------------------------------------------------------------------------------------
# Lab 09: the DPO loss
# ---------------------------------------------------------------------------------------
def dpo_stable(pi_w, pi_l, ref_w, ref_l, beta):
    return -F.logsigmoid(beta * ((pi_w - ref_w) - (pi_l - ref_l))).mean()


def dpo_softplus_detached(pi_w, pi_l, ref_w, ref_l, beta):
    # -log sigmoid(x) = softplus(-x); the implicit rewards first; the reference detached
    r_w = beta * (pi_w - ref_w.detach())
    r_l = beta * (pi_l - ref_l.detach())
    return F.softplus(r_l - r_w).sum() / len(r_w)


def test_dpo_loss_checker_accepts_correct_answers(capsys):
    assert cm.check_dpo_loss(dpo_stable)
    assert cm.check_dpo_loss(dpo_softplus_detached)
    assert verdicts(capsys.readouterr().out) == (2, 0, 0)


def test_dpo_loss_checker_rejects_wrong_answers(capsys):
    wrong = [
        # sign error: rejected minus chosen
        lambda pw, pl, rw, rl, b: -F.logsigmoid(b * ((pl - rl) - (pw - rw))).mean(),
        # beta forgotten
        lambda pw, pl, rw, rl, b: -F.logsigmoid((pw - rw) - (pl - rl)).mean(),
        # the reference model forgotten
        lambda pw, pl, rw, rl, b: -F.logsigmoid(b * (pw - pl)).mean(),
        # a sum over pairs, not a mean
        lambda pw, pl, rw, rl, b: -F.logsigmoid(b * ((pw - rw) - (pl - rl))).sum(),
        # the unstable log(sigmoid(.)): -inf for large gaps
        lambda pw, pl, rw, rl, b: -torch.log(torch.sigmoid(b * ((pw - rw) - (pl - rl)))).mean(),
        # the gradient cut
        lambda pw, pl, rw, rl, b: dpo_stable(pw, pl, rw, rl, b).detach(),
        # a Python float: no gradient
        lambda pw, pl, rw, rl, b: torch.tensor(dpo_stable(pw, pl, rw, rl, b).item()),
    ]
    for fn in wrong:
        assert not cm.check_dpo_loss(fn)
    assert not cm.check_dpo_loss(crashes)
    assert not cm.check_dpo_loss(not_implemented)
    assert verdicts(capsys.readouterr().out) == (0, len(wrong) + 1, 1)


# ---------------------------------------------------------------------------------------
# Lab 10: GRPO's group advantages
# ---------------------------------------------------------------------------------------
def group_advantages_loop(rewards, G):
    out = torch.empty_like(rewards)
    for start in range(0, len(rewards), G):
        group = [float(x) for x in rewards[start:start + G]]
        mean = sum(group) / G
        std = math.sqrt(sum((x - mean) ** 2 for x in group) / (G - 1))
        for j, x in enumerate(group):
            out[start + j] = (x - mean) / (std + 1e-4)
    return out


def group_advantages_var(rewards, G):
    grouped = rewards.reshape(-1, G)
    mean = grouped.mean(dim=1, keepdim=True)
    std = grouped.var(dim=1, unbiased=True, keepdim=True).sqrt()
    return ((grouped - mean) / (std + 1e-4)).flatten()


def test_group_advantages_checker_accepts_correct_answers(capsys):
    assert cm.check_group_advantages(group_advantages_loop)
    assert cm.check_group_advantages(group_advantages_var)
    assert verdicts(capsys.readouterr().out) == (2, 0, 0)


def test_group_advantages_checker_rejects_wrong_answers(capsys):
    def population_std(r, G):
        g = r.view(-1, G)
        return ((g - g.mean(1, keepdim=True)) / (g.std(1, unbiased=False, keepdim=True) + 1e-4)
                ).view(-1)

    def batch_statistics(r, G):
        return (r - r.mean()) / (r.std() + 1e-4)

    def no_eps(r, G):  # NaN for a group whose rewards all agree
        g = r.view(-1, G)
        return ((g - g.mean(1, keepdim=True)) / g.std(1, keepdim=True)).view(-1)

    def sign_error(r, G):
        return -group_advantages_var(r, G)

    def not_divided(r, G):  # Dr. GRPO's, not the exercise's
        g = r.view(-1, G)
        return (g - g.mean(1, keepdim=True)).view(-1)

    def wrong_grouping(r, G):  # groups taken as strided columns, not adjacent samples
        g = r.view(G, -1)
        return ((g - g.mean(0, keepdim=True)) / (g.std(0, keepdim=True) + 1e-4)).reshape(-1)

    wrong = [population_std, batch_statistics, no_eps, sign_error, not_divided, wrong_grouping]
    for fn in wrong:
        assert not cm.check_group_advantages(fn), fn.__name__
    assert not cm.check_group_advantages(crashes)
    assert not cm.check_group_advantages(not_implemented)
    assert verdicts(capsys.readouterr().out) == (0, len(wrong) + 1, 1)


# ---------------------------------------------------------------------------------------
# Lab 10: RLOO's leave-one-out baseline
# ---------------------------------------------------------------------------------------
def baseline_loop(rewards, k):
    out = torch.empty_like(rewards)
    for start in range(0, len(rewards), k):
        for i in range(start, start + k):
            others = [float(rewards[j]) for j in range(start, start + k) if j != i]
            out[i] = sum(others) / len(others)
    return out


def baseline_from_mean(rewards, k):  # b_i = (k * mean - r_i) / (k - 1)
    mean = rewards.view(-1, k).mean(dim=1).repeat_interleave(k)
    return (k * mean - rewards) / (k - 1)


def test_leave_one_out_baseline_checker_accepts_correct_answers(capsys):
    assert cm.check_leave_one_out_baseline(baseline_loop)
    assert cm.check_leave_one_out_baseline(baseline_from_mean)
    assert verdicts(capsys.readouterr().out) == (2, 0, 0)


def test_leave_one_out_baseline_checker_rejects_wrong_answers(capsys):
    def divide_by_k(r, k):
        g = r.view(-1, k)
        return ((g.sum(1, keepdim=True) - g) / k).view(-1)

    def group_mean(r, k):  # includes the sample itself: a biased gradient
        return r.view(-1, k).mean(1).repeat_interleave(k)

    def advantage_instead(r, k):
        return r - baseline_loop(r, k)

    def batch_leave_one_out(r, k):  # the other samples of the whole batch, not the group
        return (r.sum() - r) / (len(r) - 1)

    wrong = [divide_by_k, group_mean, advantage_instead, batch_leave_one_out]
    for fn in wrong:
        assert not cm.check_leave_one_out_baseline(fn), fn.__name__
    assert not cm.check_leave_one_out_baseline(crashes)
    assert not cm.check_leave_one_out_baseline(not_implemented)
    assert verdicts(capsys.readouterr().out) == (0, len(wrong) + 1, 1)


# ---------------------------------------------------------------------------------------
# Lab 10: the analytic KL of best-of-n
# ---------------------------------------------------------------------------------------
def test_best_of_n_kl_checker(capsys):
    assert cm.check_best_of_n_kl(lambda n: math.log(n) - (n - 1) / n)
    assert cm.check_best_of_n_kl(lambda n: torch.log(torch.tensor(float(n), dtype=torch.float64))
                                 - 1 + 1 / n)
    wrong = [lambda n: math.log(n),                     # the -(n - 1)/n forgotten
             lambda n: math.log2(n) - (n - 1) / n,      # bits, not nats
             lambda n: math.log(n) - n / (n + 1),       # off by one
             lambda n: math.log(n) + (n - 1) / n]       # sign
    for fn in wrong:
        assert not cm.check_best_of_n_kl(fn)
    assert not cm.check_best_of_n_kl(not_implemented)
    assert verdicts(capsys.readouterr().out) == (2, len(wrong), 1)


def test_the_references_are_the_library_functions():
    """The checkers' references are moss_lab.methods' functions, which tests/test_methods_trl.py
    ties to trl; here they are tied to the brute-force forms above."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        r, G = cm._group_rewards(gen)
        torch.testing.assert_close(cm.group_advantages_reference(r, G), group_advantages_loop(r, G))
        r, k = cm._loo_rewards(gen)
        torch.testing.assert_close(cm.leave_one_out_baseline_reference(r, k), baseline_loop(r, k))
        args = cm._dpo_inputs(gen)
        torch.testing.assert_close(cm.dpo_loss_reference(*args), dpo_stable(*args))
