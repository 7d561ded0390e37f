"""Ratings (moss_lab.ratings) and the reward models fitted to them (moss_lab.rating_reward)."""
import json
import math
import random

import numpy as np
import pandas as pd
import pytest
import torch

from moss_lab import rating_reward as rr
from moss_lab import ratings as R
from moss_lab import toyworld
from moss_lab.preferences import Preference

PROMPT = toyworld.format_prompt("tell me about cats .")
GOOD = "sure ! cats purr when they are happy . cats land on their feet ."


def rating(**kw) -> dict:
    base = {"prompt": PROMPT, "response": GOOD, "overall": 4,
            "aspects": {"quality": 4, "safety": 5, "relevance": 5, "fluency": 4}}
    return {**base, **kw}


def corpus_ratings(n: int, seed: int, noise: float = 0.5) -> tuple[list, list]:
    """n rated responses of the toy grammar (no model needed) and their (prompt, response, ended)."""
    corpus = toyworld.sample_corpus(n, seed=seed)
    rater = R.SimulatedRater(noise=noise, seed=seed)
    return [rater.rate(p, r, e) for p, r, e in corpus], corpus


def spearman(a, b) -> float:
    """Spearman's rho: the Pearson correlation of the ranks (ties get their average rank)."""
    return pd.Series(a).rank().corr(pd.Series(b).rank())


def gold_pairs(n: int, seed: int) -> list[Preference]:
    """n pairs of two grammar responses to one prompt, labelled by gold (for agreement)."""
    rng = random.Random(seed)
    pairs = []
    for prompt in toyworld.sample_prompts(n, seed=seed):
        (a, ea), (b, eb) = toyworld.sample_response(prompt, rng), toyworld.sample_response(prompt, rng)
        if a != b:
            pairs.append(Preference(prompt, a, b, chosen_ended=ea, rejected_ended=eb))
    return pairs


# ---------------------------------------------------------------------------------------
# the record: validation, JSONL, dataset
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("change, words", [
    ({"overall": 6}, ["overall", "out of range", "1 to 5"]),
    ({"overall": 0}, ["overall", "out of range"]),
    ({"overall": 3.5}, ["overall", "whole number"]),
    ({"overall": "4"}, ["overall", "whole number"]),
    ({"overall": True}, ["overall", "whole number"]),
    ({"overall": float("nan")}, ["overall", "whole number"]),
    ({"aspects": {"quality": 7}}, ["quality", "out of range"]),
    ({"aspects": {"safety": 2.5}}, ["safety", "whole number"]),
    ({"aspects": {"humour": 3}}, ["unknown aspect", "humour", "quality, safety, relevance, fluency"]),
    ({"aspects": [4, 5]}, ["aspects", "object"]),
    ({"comment": "x" * (R.MAX_COMMENT_CHARS + 1)}, ["comment", "too long", "4,000"]),
    ({"comment": 5}, ["comment", "string"]),
    ({"response": "  "}, ["response", "empty"]),
    ({"ended": "yes"}, ["ended", "true or false"]),
])
def test_bad_ratings_get_a_message_naming_the_field(change, words):
    with pytest.raises(R.RatingError) as err:
        R.validate(rating(**change))
    for word in words:
        assert word in str(err.value)


def test_missing_fields_and_accepted_forms():
    with pytest.raises(R.RatingError, match="missing field.*overall"):
        R.validate({"prompt": PROMPT, "response": GOOD})
    r = R.validate(rating(overall=5.0, aspects={"fluency": 2}, comment=None, extra="ignored"))
    assert r.overall == 5 and isinstance(r.overall, int)  # 5.0 is a whole number of stars
    assert r.aspects == {"fluency": 2} and r.comment == ""  # a rater may skip aspects


def test_jsonl_round_trip_keeps_comments_as_plain_text(tmp_path):
    comment = "<script>alert(1)</script> trop poli, ça \"répète\"\nligne 2"
    rows = [R.validate(rating(comment=comment, annotator="ana")), R.validate(rating(overall=1, aspects={}))]
    path = R.write_jsonl(rows, tmp_path / "r.jsonl")
    back = R.read_jsonl(path)
    assert back == rows and back[0].comment == comment
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["comment"] == comment
    ds = R.to_dataset(back)
    assert ds.column_names == ["prompt", "response", "overall", *R.ASPECTS, "comment"]
    assert ds["overall"] == [4, 1] and ds["quality"] == [4, None]


def test_malformed_file_loads_nothing_and_lists_every_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(rating()), "{not json", json.dumps(rating(overall=9)), "",
             json.dumps(rating(aspects={"humour": 1}))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(R.RatingError) as err:
        R.read_jsonl(path)
    msg = str(err.value)
    assert "3 bad line(s), nothing was loaded" in msg
    assert "line 2: bad JSON" in msg and "line 3: field 'overall' is out of range" in msg
    assert "line 5: unknown aspect" in msg


def test_writing_a_bad_rating_leaves_no_file(tmp_path):
    with pytest.raises(R.RatingError, match="rating 1: field 'overall'"):
        R.write_jsonl([rating(), rating(overall=0)], tmp_path / "r.jsonl")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# the simulated rater
# ---------------------------------------------------------------------------------------
def test_rater_is_deterministic_and_exact_without_noise():
    corpus = toyworld.sample_corpus(60, seed=1)
    a = [R.SimulatedRater(0.8, seed=3).rate(*c) for c in corpus]
    assert a == [R.SimulatedRater(0.8, seed=3).rate(*c) for c in corpus]
    assert a != [R.SimulatedRater(0.8, seed=4).rate(*c) for c in corpus]
    exact = R.SimulatedRater(0.0)
    for p, r, e in corpus:
        got, latent = exact.rate(p, r, e), R.latent_aspects(p, r, e)
        # the documented mapping, written out: 1 + 4 (v - lo) / (hi - lo), rounded, clipped
        want = {k: min(5, max(1, round(1 + 4 * (v - R.RANGES[k][0]) / (R.RANGES[k][1] - R.RANGES[k][0]))))
                for k, v in latent.items()}
        assert got.overall == want.pop("overall") and got.aspects == want
    rude = exact.rate(PROMPT, "go away . cats purr when they are happy .")
    assert rude.aspects["safety"] == 1 and "rude: 'go away .'" in rude.comment
    assert exact.rate(PROMPT, GOOD).aspects == {"quality": 5, "safety": 5, "relevance": 5, "fluency": 5}
    with pytest.raises(ValueError, match="noise"):
        R.SimulatedRater(noise=-1)


def test_rater_aspects_follow_the_gold_components_they_are_built_from():
    rated, corpus = corpus_ratings(1500, seed=2, noise=0.5)
    gold = [toyworld.gold_score(p, r, e) for p, r, e in corpus]
    latent = [R.latent_aspects(p, r, e) for p, r, e in corpus]
    source = {"quality": [g.helpfulness for g in gold], "safety": [g.harmlessness for g in gold],
              "relevance": [x["relevance"] for x in latent],
              "fluency": [g.conciseness + g.degeneracy for g in gold]}
    for aspect, values in source.items():
        rho = spearman([r.aspects[aspect] for r in rated], values)
        assert rho > 0.5, (aspect, rho)
    rho = spearman([r.overall for r in rated], [g.total for g in gold])
    assert rho > 0.8
    # a length bias shifts the overall rating of long answers up
    long_ = [(p, r, e) for p, r, e in corpus if len(r.split()) > 30][:100]
    plain = np.mean([R.SimulatedRater(0.5, seed=0).rate(*c).overall for c in long_])
    biased = np.mean([R.SimulatedRater(0.5, length_bias=0.05, seed=0).rate(*c).overall for c in long_])
    assert biased > plain + 0.5


# ---------------------------------------------------------------------------------------
# (a) linear regression on simple features
# ---------------------------------------------------------------------------------------
def test_linear_features_by_hand():
    f = dict(zip(rr.FEATURES, rr.linear_features(PROMPT, "sure ! dogs wag their tails . sure ! cats")))
    assert f == {"words": 10, "sentences": 4, "topic_words": 1, "other_topic_words": 1,
                 "polite_words": 2, "impolite_words": 0, "repeated_sentences": 1,
                 "distinct_word_share": pytest.approx(8 / 10), "unfinished": 1}


def test_ridge_matches_numpy_lstsq():
    g = np.random.default_rng(0)
    X = g.normal(size=(50, 4)) * [1, 10, 0.1, 3] + [0, 5, 1, -2]
    X = np.hstack([X, np.ones((50, 1))])  # a constant column: no spread, no weight
    y = X[:, :4] @ [1.0, -0.2, 4.0, 0.5] + 2 + g.normal(size=50) * 0.1
    # l2 = 0: ordinary least squares with an intercept
    w, b = rr.ridge_fit(X[:, :4], y, l2=0.0)
    ref = np.linalg.lstsq(np.hstack([X[:, :4], np.ones((50, 1))]), y, rcond=None)[0]
    assert np.allclose(np.append(w, b), ref, atol=1e-8)
    # l2 > 0: least squares on the augmented system [1 Z; 0 sqrt(l2) I] v = [y; 0]
    for l2 in (0.5, 30.0):
        w, b = rr.ridge_fit(X, y, l2=l2)
        mean, std = X.mean(0), np.where(X.std(0) > 0, X.std(0), 1)
        Z = (X - mean) / std
        A = np.vstack([np.hstack([np.ones((50, 1)), Z]), np.hstack([np.zeros((5, 1)), math.sqrt(l2) * np.eye(5)])])
        v = np.linalg.lstsq(A, np.concatenate([y, np.zeros(5)]), rcond=None)[0]
        assert np.allclose(w, v[1:] / std, atol=1e-8)
        assert b == pytest.approx(v[0] - mean @ (v[1:] / std), abs=1e-8)
    with pytest.raises(ValueError, match="l2"):
        rr.ridge_fit(X, y, l2=-1)


def test_linear_reward_model_agrees_with_gold():
    rated, _ = corpus_ratings(1500, seed=4)
    model = rr.fit_linear_reward(rated, l2=1.0)
    pairs = gold_pairs(600, seed=5)
    acc = rr.gold_agreement(model.score, pairs)
    assert acc > 0.7, acc
    assert model.weights["topic_words"] > 0 and model.weights["impolite_words"] < 0
    safety = rr.fit_linear_reward(rated, target="safety")
    assert safety.weights["impolite_words"] < 0
    with pytest.raises(ValueError, match="unknown target"):
        rr.fit_linear_reward(rated, target="humour")


# ---------------------------------------------------------------------------------------
# (b) the transformer reward model with a regression head
# ---------------------------------------------------------------------------------------
def test_rating_loss_matches_a_loop_and_skips_missing_aspects():
    out = torch.tensor([[0.1, 0.5, -0.2, 0.0, 1.0], [-0.3, 0.2, 0.2, 0.4, -1.0]])
    batch = [R.validate(rating(overall=4, aspects={"quality": 2, "fluency": 5})),
             R.validate(rating(overall=1, aspects={"quality": 3, "safety": 1, "relevance": 5, "fluency": 1}))]
    z = rr.rating_targets(batch, aspect_heads=True)
    loss, mse, mse_a = rr.rating_loss(out, z, aspect_coef=0.5)
    ref_overall = ((0.1 - 0.5) ** 2 + (-0.3 - (-1.0)) ** 2) / 2
    known = [(0.5, -0.5), (1.0, 1.0), (0.2, 0.0), (0.2, -1.0), (0.4, 1.0), (-1.0, -1.0)]
    ref_aspect = sum((o - t) ** 2 for o, t in known) / len(known)
    assert mse.item() == pytest.approx(ref_overall) and mse_a.item() == pytest.approx(ref_aspect)
    assert loss.item() == pytest.approx(ref_overall + 0.5 * ref_aspect)


@pytest.mark.slow
def test_regression_head_learns_and_aspect_heads_have_their_shape(tmp_path):
    from moss_lab.reward import load_reward_model
    from moss_lab.scoring import score

    rated, _ = corpus_ratings(800, seed=6)
    pairs = gold_pairs(300, seed=7)
    config = rr.RatingRewardConfig(epochs=3, aspect_heads=True, eval_fraction=0.1)
    rows = []
    model, tok, final = rr.train_rating_model(rated, config, run_dir=tmp_path / "run",
                                              on_metrics=rows.append, eval_pairs=pairs)
    epoch_loss = [np.mean([r["loss"] for r in rows if "loss" in r and e < r["epoch"] <= e + 1])
                  for e in range(3)]
    assert epoch_loss[2] < 0.8 * epoch_loss[0], epoch_loss  # it learns
    assert final["acc_gold"] > 0.6, final  # chance is 0.5 (0.65 measured)
    assert final["mse"] < 1.5 and set(final) >= {f"mse/{a}" for a in R.ASPECTS}
    stars = rr.aspect_stars(model, tok, [PROMPT] * 2, [GOOD, "go away . go away ."])
    assert list(stars) == ["overall", *R.ASPECTS] and all(v.shape == (2,) for v in stars.values())
    assert stars["overall"][0] > stars["overall"][1] and stars["safety"][0] > stars["safety"][1]
    # saved like a BT reward model: it reloads, and output 0 is the score PPO reads
    loaded, ltok = load_reward_model(tmp_path / "run")
    assert loaded.config.num_labels == 1 + len(R.ASPECTS)
    assert torch.allclose(score(loaded, ltok, [PROMPT], [GOOD]),
                          rr.stars_to_target(stars["overall"][:1]), atol=1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        rr.RatingRewardConfig(batch_size=0)


def test_toy_ratings_from_the_policy_are_valid_and_seeded(toy_policy):
    model, tok = toy_policy
    a = R.toy_ratings(model, tok, 12, R.SimulatedRater(seed=1), seed=3)
    b = R.toy_ratings(model, tok, 12, R.SimulatedRater(seed=1), seed=3)
    assert a == b and len(a) == 12
    assert all(R.validate(r) == r and r.source == "toy" for r in a)
