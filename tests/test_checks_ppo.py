"""The lab 04-05 checkers: a correct answer passes, typical mistakes fail, nothing raises.

The "correct" answers here are written independently of moss_lab.ppo (brute-force sums
over k >= t), so these tests also tie the library's references to the formulas.
"""
import torch

from moss_lab import checks


def returns_brute(rewards, gamma):
    B, T = rewards.shape
    out = torch.zeros(B, T)
    for b in range(B):
        for t in range(T):
            out[b, t] = sum(gamma ** (k - t) * rewards[b, k] for k in range(t, T))
    return out


def td_brute(rewards, values, gamma):
    nxt = torch.cat([values[:, 1:], torch.zeros(len(values), 1)], dim=1)
    return rewards + gamma * nxt - values


def gae_brute(rewards, values, gamma, lam):
    delta = td_brute(rewards, values, gamma)
    B, T = rewards.shape
    adv = torch.zeros(B, T)
    for b in range(B):
        for t in range(T):
            adv[b, t] = sum((gamma * lam) ** (k - t) * delta[b, k] for k in range(t, T))
    return adv, adv + values


def surrogate_by_hand(logp, old_logp, advantages, mask, clip):
    ratio = (logp - old_logp).exp()
    per_token = -torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    return per_token[mask.bool()].mean()


def not_implemented(*args):
    raise NotImplementedError


def test_discounted_returns_checker(capsys):
    assert checks.check_discounted_returns(returns_brute)
    # the total return in every column, and the forward cumulative sum, are classic slips
    assert not checks.check_discounted_returns(
        lambda r, g: returns_brute(r, g)[:, :1].expand_as(r).clone())
    assert not checks.check_discounted_returns(lambda r, g: r.cumsum(dim=1))
    assert not checks.check_discounted_returns(not_implemented)
    out = capsys.readouterr().out
    assert out.count("✅") == 1 and out.count("❌") == 2 and "Not implemented" in out


def test_clipped_surrogate_checker(capsys):
    assert checks.check_clipped_surrogate(surrogate_by_hand)
    # the mean over padding too; max instead of min; a detached ratio (no gradient)
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: (-torch.minimum((lp - olp).exp() * a,
                                                  (lp - olp).exp().clamp(1 - c, 1 + c) * a)
                                   * m).mean())
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: -torch.maximum((lp - olp).exp() * a,
                                                (lp - olp).exp().clamp(1 - c, 1 + c) * a)[m.bool()].mean())
    assert not checks.check_clipped_surrogate(
        lambda lp, olp, a, m, c: surrogate_by_hand(lp.detach(), olp, a, m, c))
    assert not checks.check_clipped_surrogate(not_implemented)
    assert capsys.readouterr().out.count("✅") == 1


def test_td_and_gae_checkers(capsys):
    assert checks.check_td_errors(td_brute)
    assert not checks.check_td_errors(  # bootstraps from a value after the episode ended
        lambda r, v, g: r + g * torch.roll(v, -1, dims=1) - v)
    assert checks.check_gae(gae_brute)
    assert not checks.check_gae(lambda r, v, g, l: (gae_brute(r, v, g, l)[0],
                                                    gae_brute(r, v, g, l)[0]))  # returns != A
    assert not checks.check_gae(lambda r, v, g, l: gae_brute(r, v, g, 1.0))  # ignores lambda
    assert not checks.check_gae(not_implemented)
    assert capsys.readouterr().out.count("✅") == 2


def test_checkers_never_raise_on_a_crashing_answer(capsys):
    def crashes(*args):
        return args[0] @ torch.zeros(3, 3, 3)  # a shape error

    for checker in (checks.check_discounted_returns, checks.check_clipped_surrogate,
                    checks.check_td_errors, checks.check_gae):
        assert checker(crashes) is False
    assert capsys.readouterr().out.count("raised") == 4
