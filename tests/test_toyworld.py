"""The toy world: gold score components, the simulated annotator, determinism."""
import pytest

from moss_lab import toyworld as tw

PROMPT = tw.format_prompt("tell me about cats .")


def test_prompt_format_ends_with_space_and_names_topic():
    assert PROMPT == "Human: tell me about cats . Assistant: "
    assert tw.topic_of(PROMPT) == "cats"


@pytest.mark.parametrize(
    "response, ended, expected",
    [
        # two on-topic facts: 1.5 + 1.0; polite opening +0.5
        ("sure ! cats purr when they are happy . cats hunt small mice .", True,
         dict(helpfulness=2.5, harmlessness=0.5, conciseness=0.0, degeneracy=0.0)),
        # gains diminish and stop after three distinct facts
        ("cats purr when they are happy . cats hunt small mice . cats land on their feet . "
         "cats sleep most of the day .", True,
         dict(helpfulness=3.0, harmlessness=0.0, conciseness=-0.05 * (25 - 24), degeneracy=0.0)),
        # off topic only: -0.75 per fact and -1 for no on-topic fact
        ("dogs wag their tails .", True,
         dict(helpfulness=-1.75, harmlessness=0.0, conciseness=0.0, degeneracy=0.0)),
        # rude and filler
        ("go away . let me think . cats hunt small mice .", True,
         dict(helpfulness=1.5, harmlessness=-1.5, conciseness=-0.25, degeneracy=0.0)),
        # a repeat, words outside the grammar, and no end
        ("cats hunt small mice . cats hunt small mice . purple banana", False,
         dict(helpfulness=1.5, harmlessness=0.0, conciseness=0.0, degeneracy=-1 - 0.5 - 2)),
    ],
)
def test_gold_components_on_hand_written_responses(response, ended, expected):
    score = tw.gold_score(PROMPT, response, ended)
    for name, value in expected.items():
        assert getattr(score, name) == pytest.approx(value), name
    assert score.total == pytest.approx(sum(expected.values()))
    assert score.as_dict()["total"] == pytest.approx(score.total)


def test_grammaticality():
    assert tw.is_grammatical("sure ! cats hunt small mice .")
    assert not tw.is_grammatical("cats hunt small")
    assert not tw.is_grammatical("")


def test_every_grammar_word_is_in_the_vocabulary():
    vocab = set(tw.vocabulary())
    for prompt, response, _ in tw.sample_corpus(300, seed=3):
        assert set((prompt + response).split()) <= vocab


def test_sampling_is_deterministic_given_a_seed():
    assert tw.sample_corpus(50, seed=7) == tw.sample_corpus(50, seed=7)
    assert tw.sample_corpus(50, seed=7) != tw.sample_corpus(50, seed=8)
    assert tw.sample_prompts(20, seed=1) == tw.sample_prompts(20, seed=1)


def test_corpus_has_mixed_quality():
    scores = [tw.gold_score(p, r, e).total for p, r, e in tw.sample_corpus(2000, seed=0)]
    assert min(scores) < -2 and max(scores) >= 3
    assert sum(s > 1 for s in scores) > 300 and sum(s < 0 for s in scores) > 300


def _agreement(annotator, pairs):
    agree = n = 0
    for prompt, a, b in pairs:
        ga, gb = tw.gold_score(prompt, a).total, tw.gold_score(prompt, b).total
        if ga == gb:
            continue
        n += 1
        agree += annotator.prefers_a(prompt, a, b) == (ga > gb)
    return agree / n


def test_annotator_agreement_rises_as_noise_falls():
    corpus = tw.sample_corpus(1200, seed=5)
    pairs = [(p, r, corpus[i + 1][1]) for i, (p, r, _) in enumerate(corpus[:-1:2])]
    agreements = [_agreement(tw.SimulatedAnnotator(noise=noise, seed=0), pairs)
                  for noise in (4.0, 1.0, 0.25, 0.0)]
    assert agreements == sorted(agreements)
    assert agreements[-1] == 1.0 and agreements[0] < 0.75


def test_annotator_probability_is_bradley_terry_on_gold():
    a, b = "cats hunt small mice .", "go away ."
    diff = tw.gold_score(PROMPT, a).total - tw.gold_score(PROMPT, b).total
    annotator = tw.SimulatedAnnotator(noise=2.0)
    import math
    assert annotator.prob_a(PROMPT, a, b) == pytest.approx(1 / (1 + math.exp(-diff / 2.0)))


def test_length_bias_prefers_longer_answers():
    short, long = "cats hunt small mice .", "cats hunt small mice . let me think . so , yes ."
    fair = tw.SimulatedAnnotator(noise=1.0)
    biased = tw.SimulatedAnnotator(noise=1.0, length_bias=0.5)
    assert fair.prob_a(PROMPT, long, short) < 0.5 < biased.prob_a(PROMPT, long, short)


def test_annotator_labels_are_deterministic_given_a_seed():
    pairs = [(PROMPT, "cats hunt small mice .", "go away .")] * 50
    one = tw.SimulatedAnnotator(noise=3.0, seed=4)
    seq1 = [one.prefers_a(*p) for p in pairs]
    two = tw.SimulatedAnnotator(noise=3.0, seed=4)
    assert seq1 == [two.prefers_a(*p) for p in pairs]
    other = tw.SimulatedAnnotator(noise=3.0, seed=5)
    assert seq1 != [other.prefers_a(*p) for p in pairs]
