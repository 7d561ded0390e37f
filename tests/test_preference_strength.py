"""MOSS-RLHF Part II (moss_lab.preference_strength, the reward.py hooks, lab 11's checkers):
each formula against numpy or a loop, each training hook against an equivalent run built
by hand (flipping = training on flipped pairs, the adaptive margin = record margins), and
the checkers accept correct variants and reject plausible wrong answers."""
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from moss_lab import checks_reward as cr
from moss_lab import preference_strength as ps
from moss_lab import preferences as prefs
from moss_lab import reward, toyworld
from moss_lab.preferences import Preference
from moss_lab.reward import RewardConfig
from moss_lab.scoring import score


# ---------------------------------------------------------------------------------------
# Strength, spread, suspects
# ---------------------------------------------------------------------------------------
def test_strength_stats_match_numpy():
    gaps = torch.randn(5, 11, generator=torch.Generator().manual_seed(0)) * 2 + 0.5
    mean, std = ps.strength_stats(gaps)
    np.testing.assert_allclose(mean.numpy(), np.mean(gaps.numpy(), axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(std.numpy(), np.std(gaps.numpy(), axis=0, ddof=1), rtol=1e-5)
    # the population std (ddof=0) is a different number for 5 members
    assert not np.allclose(std.numpy(), np.std(gaps.numpy(), axis=0), rtol=1e-3)


def test_strength_stats_refuses_a_single_model():
    with pytest.raises(ValueError, match="M >= 2"):
        ps.strength_stats(torch.zeros(1, 4))
    with pytest.raises(ValueError, match="at least 2 reward models"):
        ps.train_ensemble([], n_models=1)


def test_suspect_pairs_on_a_constructed_case():
    strength = torch.tensor([-3.0, -0.5, -0.5, 0.0, 2.0, -1.0])
    spread = torch.tensor([1.0, 1.0, 0.1, 1.0, 1.0, 1.0])
    # by hand: confidently negative means strength < -z * spread
    T, F_ = True, False
    assert ps.suspect_pairs(strength, spread).tolist() == [T, F_, T, F_, F_, F_]
    assert ps.suspect_pairs(strength, spread, z=0.0).tolist() == [T, T, T, F_, F_, T]
    assert ps.suspect_pairs(strength, spread, z=2.0).tolist() == [T, F_, T, F_, F_, F_]


@pytest.fixture(scope="module")
def members():
    """Three untrained reward models (different heads): an ensemble that disagrees."""
    return [reward.init_reward_model("toy", seed=s) for s in range(3)]


PROMPT = "tell me about cats . "


def few_pairs():
    return [Preference(PROMPT, "cats purr when they are happy .", "go away ."),
            Preference(PROMPT, "cats sleep most of the day .", "bees can sting ."),
            Preference(PROMPT, "sure ! cats land on their feet .", "i do not care .")]


def test_ensemble_strength_is_mean_and_std_of_each_members_gap(members):
    pairs = few_pairs()
    gaps = []
    for model, tok in members:  # a loop over members and pairs, one text at a time
        gaps.append([score(model, tok, [p.prompt], [p.chosen]).item()
                     - score(model, tok, [p.prompt], [p.rejected]).item() for p in pairs])
    gaps = np.array(gaps)
    mean, std = ps.ensemble_strength(members, pairs)
    np.testing.assert_allclose(mean.numpy(), gaps.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(std.numpy(), gaps.std(axis=0, ddof=1), atol=1e-5)
    assert ps.ensemble_gaps(members, pairs).shape == (3, 3)


# ---------------------------------------------------------------------------------------
# InfoNCE and the contrastive term
# ---------------------------------------------------------------------------------------
def info_nce_loop(z1, z2, t):
    """Plain floats: for each row i, -log of its positive's share of exp(cos / t)."""
    a, b = z1.tolist(), z2.tolist()

    def cos(u, v):
        dot = sum(x * y for x, y in zip(u, v))
        return dot / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))

    total = 0.0
    for i in range(len(a)):
        logits = [cos(a[i], b[j]) / t for j in range(len(b))]
        total += -(logits[i] - math.log(sum(math.exp(x) for x in logits)))
    return total / len(a)


@pytest.mark.parametrize("t", [0.05, 0.1, 1.0])
def test_info_nce_matches_a_loop_over_pairs(t):
    g = torch.Generator().manual_seed(1)
    z1 = torch.randn(7, 5, generator=g, dtype=torch.float64)
    z2 = 2 * z1 + torch.randn(7, 5, generator=g, dtype=torch.float64) * 0.5
    assert ps.info_nce(z1, z2, t).item() == pytest.approx(info_nce_loop(z1, z2, t), rel=1e-9)
    # a wrong variant (dot products, no normalisation) is another number
    wrong = F.cross_entropy(z1 @ z2.T / t, torch.arange(7)).item()
    assert wrong != pytest.approx(info_nce_loop(z1, z2, t), rel=1e-3)


def test_contrastive_loss_is_info_nce_of_two_dropout_views_of_the_difference():
    g = torch.Generator().manual_seed(2)
    h_c, h_r = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    v = h_c - h_r
    assert ps.contrastive_loss(h_c, h_r, 0.1, dropout=0.0).item() == pytest.approx(
        info_nce_loop(v, v, 0.1), rel=1e-5)
    torch.manual_seed(0)
    got = ps.contrastive_loss(h_c, h_r, 0.1, dropout=0.5)
    torch.manual_seed(0)  # the same two dropout masks, one per view
    v1, v2 = F.dropout(v, 0.5), F.dropout(v, 0.5)
    assert not torch.equal(v1, v2)  # two different views
    assert got.item() == pytest.approx(info_nce_loop(v1, v2, 0.1), rel=1e-5)


def test_contrastive_coef_adds_the_term_on_what_the_head_reads():
    model, tok = reward.init_reward_model("toy", seed=0)
    model.eval()
    pairs = few_pairs()
    c = 0.7
    plain = reward.pair_loss(model, tok, pairs, RewardConfig())[0]
    torch.manual_seed(3)
    with_term = reward.pair_loss(model, tok, pairs, RewardConfig(contrastive_coef=c,
                                                                contrastive_temperature=0.2))[0]
    # by hand: the last hidden state at each text's last real token, the head's input
    batch = reward.reward_inputs(tok, [p.prompt for p in pairs] * 2,
                                 [p.chosen for p in pairs] + [p.rejected for p in pairs])
    out = model(**batch, output_hidden_states=True)
    last = batch["attention_mask"].shape[1] - 1
    h = out.hidden_states[-1][:, last]
    torch.testing.assert_close(model.score(h)[:, 0], out.logits[:, 0])  # the head reads h
    torch.manual_seed(3)
    term = ps.contrastive_loss(h[:3], h[3:], 0.2)
    assert with_term.item() == pytest.approx(plain.item() + c * term.item(), rel=1e-5)
    assert term.item() > 0


# ---------------------------------------------------------------------------------------
# Strength-driven smoothing
# ---------------------------------------------------------------------------------------
def test_smooth_fraction_smooths_only_the_pairs_closest_to_zero():
    pairs = few_pairs() * 2
    pairs = [dataclasses.replace(p) for p in pairs]
    pairs[5].tie = True
    strength = torch.tensor([3.0, -0.2, 0.5, -2.0, 0.1, 0.0])
    cfg = RewardConfig(label_smoothing=0.2, smooth_fraction=0.4)  # 40% of 5 labelled = 2
    # by hand: |s| of the labelled pairs 3, 0.2, 0.5, 2, 0.1 -> the two smallest: 4 and 1
    assert reward.pair_smoothing(pairs, cfg, strength).tolist() == pytest.approx(
        [0.0, 0.2, 0.0, 0.0, 0.2, 0.5])
    # before a strength is known: no smoothing (ties keep 0.5); smooth_fraction 0: all pairs
    assert reward.pair_smoothing(pairs, cfg).tolist() == pytest.approx([0, 0, 0, 0, 0, 0.5])
    assert reward.pair_smoothing(pairs, RewardConfig(label_smoothing=0.2), strength).tolist() == \
        pytest.approx([0.2] * 5 + [0.5])


# ---------------------------------------------------------------------------------------
# train_reward_model(..., strength=s): equivalent runs built by hand
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def noisy(toy_policy):
    model, tokenizer = toy_policy
    return prefs.toy_pairs(model, tokenizer, 96, toyworld.SimulatedAnnotator(2.0, seed=0),
                           seed=5, max_new_tokens=12)


TINY = RewardConfig(epochs=2, batch_size=32, warmup_steps=2, eval_fraction=0.25)


def scores_of(model, tok, pairs):
    r_c, r_r = reward.pair_scores(model, tok, pairs)
    return torch.cat([r_c, r_r])


def test_given_strength_flips_from_the_first_epoch_like_training_on_flipped_pairs(noisy):
    strength = torch.randn(len(noisy), generator=torch.Generator().manual_seed(0))
    cfg = dataclasses.replace(TINY, flip_fraction=0.25)
    # eval_pairs=None: the split must carry each pair's strength along
    model, tok, final = reward.train_reward_model(noisy, cfg, strength=strength)
    # by hand: split like the library, flip the weakest quarter of the training pairs
    order = list(range(len(noisy)))
    train_idx, held_idx = reward.split_pairs(order, TINY.eval_fraction, TINY.seed)
    train = [noisy[i] for i in train_idx]
    flipped, idx = reward.flip_weakest(train, strength[train_idx], 0.25)
    assert final["flipped"] == len(idx) == len(train) // 4
    ref, ref_tok, _ = reward.train_reward_model(flipped, TINY, eval_pairs=[])
    torch.testing.assert_close(scores_of(model, tok, noisy), scores_of(ref, ref_tok, noisy))


def test_given_strength_sets_the_adaptive_margin_like_record_margins(noisy):
    strength = torch.randn(len(noisy), generator=torch.Generator().manual_seed(1))
    alpha = 0.5
    model, tok, _ = reward.train_reward_model(
        noisy, dataclasses.replace(TINY, adaptive_margin=alpha), eval_pairs=[], strength=strength)
    by_hand = [dataclasses.replace(p, margin=alpha * max(s, 0.0))
               for p, s in zip(noisy, strength.tolist())]
    ref, ref_tok, _ = reward.train_reward_model(by_hand, TINY, eval_pairs=[])
    torch.testing.assert_close(scores_of(model, tok, noisy), scores_of(ref, ref_tok, noisy),
                               rtol=1e-4, atol=1e-5)


def test_given_strength_smoothing_of_every_pair_is_plain_label_smoothing(noisy):
    strength = torch.randn(len(noisy), generator=torch.Generator().manual_seed(2))
    cfg = dataclasses.replace(TINY, label_smoothing=0.2)
    model, tok, _ = reward.train_reward_model(
        noisy, dataclasses.replace(cfg, smooth_fraction=1.0), eval_pairs=[], strength=strength)
    ref, ref_tok, _ = reward.train_reward_model(noisy, cfg, eval_pairs=[])
    torch.testing.assert_close(scores_of(model, tok, noisy), scores_of(ref, ref_tok, noisy))
    # a strength without a remedy that needs it changes nothing
    plain, plain_tok, _ = reward.train_reward_model(noisy, TINY, eval_pairs=[])
    same, same_tok, _ = reward.train_reward_model(noisy, TINY, eval_pairs=[], strength=strength)
    torch.testing.assert_close(scores_of(plain, plain_tok, noisy), scores_of(same, same_tok, noisy))


def test_a_strength_of_the_wrong_length_is_refused(noisy):
    with pytest.raises(ValueError, match="one number per pair: 96 pairs"):
        reward.train_reward_model(noisy, TINY, strength=torch.zeros(95))


def test_train_ensemble_members_are_runs_with_consecutive_seeds(noisy):
    cfg = dataclasses.replace(TINY, epochs=1, seed=4)
    ens = ps.train_ensemble(noisy[:64], cfg, n_models=2)
    assert len(ens) == 2
    one, one_tok, _ = reward.train_reward_model(noisy[:64], dataclasses.replace(cfg, seed=5),
                                                eval_pairs=[])
    one_scores = scores_of(one, one_tok, noisy)
    torch.testing.assert_close(scores_of(ens[1][0], ens[1][1], noisy), one_scores)
    assert not torch.allclose(scores_of(ens[0][0], ens[0][1], noisy), one_scores)


# ---------------------------------------------------------------------------------------
# Lab 11's checkers
# ---------------------------------------------------------------------------------------
def not_implemented(*args):
    raise NotImplementedError


def verdicts(out: str) -> tuple[int, int, int]:
    return out.count("✅"), out.count("❌"), out.count("Not implemented yet")


def strength_loop(r_c, r_r):
    M, n = r_c.shape
    mean, std = torch.empty(n), torch.empty(n)
    for i in range(n):
        d = [float(r_c[m, i] - r_r[m, i]) for m in range(M)]
        mu = sum(d) / M
        mean[i], std[i] = mu, math.sqrt(sum((x - mu) ** 2 for x in d) / (M - 1))
    return mean, std


def test_strength_checker_accepts_correct_answers(capsys):
    assert cr.check_preference_strength(strength_loop)
    assert cr.check_preference_strength(lambda c, r: ((c - r).mean(0), (c - r).var(0).sqrt()))
    assert cr.check_preference_strength(
        lambda c, r: (c.mean(0) - r.mean(0), torch.std(c - r, dim=0, unbiased=True)))
    assert verdicts(capsys.readouterr().out) == (3, 0, 0)


def test_strength_checker_rejects_wrong_answers(capsys):
    wrong = [
        lambda c, r: ((c - r).mean(0), (c - r).std(0, unbiased=False)),  # population std
        lambda c, r: ((r - c).mean(0), (r - c).std(0)),  # sign: rejected minus chosen
        lambda c, r: ((c - r).mean(1), (c - r).std(1)),  # over the pairs, not the members
        lambda c, r: ((c - r).mean(0), (c - r).var(0)),  # the variance
        lambda c, r: ((c - r).mean(0), c.std(0) + r.std(0)),  # spreads of the rewards
        lambda c, r: (c - r).mean(0),  # one output
    ]
    for fn in wrong:
        assert not cr.check_preference_strength(fn)
    assert not cr.check_preference_strength(not_implemented)
    assert verdicts(capsys.readouterr().out) == (0, len(wrong), 1)


def test_info_nce_checker_accepts_correct_answers(capsys):
    def by_logsumexp(z1, z2, t):
        a, b = z1 / z1.norm(dim=1, keepdim=True), z2 / z2.norm(dim=1, keepdim=True)
        logits = a @ b.T / t
        return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()

    def by_loop(z1, z2, t):
        losses = []
        for i in range(len(z1)):
            sims = F.cosine_similarity(z1[i:i + 1], z2, dim=1) / t
            losses.append(-torch.log_softmax(sims, dim=0)[i])
        return torch.stack(losses).mean()

    assert cr.check_info_nce(by_logsumexp)
    assert cr.check_info_nce(by_loop)
    assert verdicts(capsys.readouterr().out) == (2, 0, 0)


def test_info_nce_checker_rejects_wrong_answers(capsys):
    def norm(z):
        return F.normalize(z, dim=-1)

    def labels(z):
        return torch.arange(len(z))

    wrong = [
        lambda z1, z2, t: F.cross_entropy(z1 @ z2.T / t, labels(z1)),  # dot product, no cosine
        lambda z1, z2, t: F.cross_entropy(norm(z1) @ norm(z2).T, labels(z1)),  # no temperature
        lambda z1, z2, t: F.cross_entropy(norm(z1) @ norm(z2).T * t, labels(z1)),  # times t
        lambda z1, z2, t: F.cross_entropy(norm(z1) @ norm(z2).T / t, labels(z1), reduction="sum"),
        lambda z1, z2, t: -(norm(z1) * norm(z2)).sum(1).div(t).mean(),  # no negatives
        lambda z1, z2, t: F.cross_entropy(norm(z1) @ norm(z1).T / t, labels(z1)),  # z1 vs itself
        lambda z1, z2, t: F.cross_entropy(norm(z1) @ norm(z2).T / t, labels(z1)).detach(),
    ]
    for fn in wrong:
        assert not cr.check_info_nce(fn)
    assert not cr.check_info_nce(not_implemented)
    assert verdicts(capsys.readouterr().out) == (0, len(wrong), 1)
