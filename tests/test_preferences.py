"""Preference records: validation, JSONL, datasets export, HH-RLHF parsing, toy pairs."""
import json

import pytest

from moss_lab import preferences as prefs
from moss_lab import files, toyworld
from moss_lab.preferences import Preference, PreferenceError

GOOD = {"prompt": "Human: tell me about cats . Assistant: ",
        "chosen": "cats purr when they are happy .", "rejected": "go away ."}


def write_lines(path, lines):
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


# ---------------------------------------------------------------------------------------
# validation: every error names its problem
# ---------------------------------------------------------------------------------------
def test_validate_accepts_a_good_record_and_keeps_optional_fields():
    p = prefs.validate({**GOOD, "tie": False, "annotator": "ann", "margin": 1, "extra": 3})
    assert p == Preference(**GOOD, annotator="ann", margin=1.0)


@pytest.mark.parametrize("record, message", [
    ({"prompt": "p", "chosen": "a"}, "missing field(s): rejected"),
    ({"chosen": "a", "rejected": "b"}, "missing field(s): prompt"),
    ({**GOOD, "chosen": "   "}, "field 'chosen' is empty"),
    ({**GOOD, "rejected": ""}, "field 'rejected' is empty"),
    ({**GOOD, "prompt": ""}, "field 'prompt' is empty"),
    ({**GOOD, "rejected": GOOD["chosen"]}, "chosen and rejected are the same text"),
    ({**GOOD, "chosen": "x" * (prefs.MAX_CHARS + 1)}, "field 'chosen' is too long"),
    ({**GOOD, "prompt": 3}, "field 'prompt' must be a string"),
    ({**GOOD, "tie": "yes"}, "field 'tie' must be true or false"),
    ({**GOOD, "margin": float("nan")}, "field 'margin' must be a finite number"),
    ({**GOOD, "margin": "big"}, "field 'margin' must be a finite number"),
    ({**GOOD, "annotator": 5}, "field 'annotator' must be a string or null"),
    (["not", "a", "dict"], "must be a JSON object"),
])
def test_validate_rejects_bad_records(record, message):
    with pytest.raises(PreferenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prefs.validate(record)


def test_text_at_the_size_limit_is_accepted():
    prefs.validate({**GOOD, "chosen": "x" * prefs.MAX_CHARS})


# ---------------------------------------------------------------------------------------
# JSONL
# ---------------------------------------------------------------------------------------
def test_jsonl_round_trip(tmp_path):
    records = [Preference(**GOOD), Preference(**{**GOOD, "chosen": "héllo ✓"}, tie=True,
                                              annotator="me", source="app",
                                              created_at="2024-01-01T00:00:00+00:00",
                                              margin=0.5, rejected_ended=False)]
    path = prefs.write_jsonl(records, tmp_path / "sub" / "p.jsonl")
    assert prefs.read_jsonl(path) == records
    assert len(path.read_text(encoding="utf-8").splitlines()) == 2
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["p.jsonl"]  # no temp left


def test_read_jsonl_skips_blank_lines(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), "", "  ", json.dumps(GOOD)])
    assert len(prefs.read_jsonl(path)) == 2


def test_read_jsonl_names_the_line_of_bad_json(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), '{"prompt": "x",'])
    with pytest.raises(PreferenceError, match=r"line 2: bad JSON"):
        prefs.read_jsonl(path)


def test_read_jsonl_rejects_non_utf8(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps(GOOD), b'{"prompt": "caf\xe9"}'])
    with pytest.raises(PreferenceError, match=r"line 2: not valid UTF-8 \(byte 0xe9"):
        prefs.read_jsonl(path)


def test_read_jsonl_reports_every_bad_line_and_loads_nothing(tmp_path):
    lines = [json.dumps(GOOD), json.dumps({**GOOD, "chosen": ""}),
             json.dumps({"prompt": "p"}), json.dumps({**GOOD, "rejected": GOOD["chosen"]})]
    path = write_lines(tmp_path / "p.jsonl", lines)
    with pytest.raises(PreferenceError) as err:
        prefs.read_jsonl(path)
    text = str(err.value)
    assert "3 bad line(s)" in text and "nothing was loaded" in text
    assert "line 2: field 'chosen' is empty" in text
    assert "line 3: missing field(s): chosen, rejected" in text
    assert "line 4: chosen and rejected are the same text" in text


def test_read_jsonl_rejects_oversized_text(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [json.dumps({**GOOD, "rejected": "y" * 20_001})])
    with pytest.raises(PreferenceError, match="line 1: field 'rejected' is too long"):
        prefs.read_jsonl(path)


def test_write_jsonl_is_atomic_on_a_bad_record(tmp_path):
    path = prefs.write_jsonl([Preference(**GOOD)], tmp_path / "p.jsonl")
    before = path.read_bytes()
    bad = [Preference(**GOOD), {**GOOD, "chosen": ""}]
    with pytest.raises(PreferenceError, match="record 1: field 'chosen' is empty"):
        prefs.write_jsonl(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


def test_write_jsonl_leaves_no_temp_file_when_writing_fails(tmp_path, monkeypatch):
    path = prefs.write_jsonl([Preference(**GOOD)], tmp_path / "p.jsonl")
    before = path.read_bytes()

    def boom(*args):
        raise OSError("disk full")
    monkeypatch.setattr(files.os, "fsync", boom)  # the atomic write lives in moss_lab.files
    with pytest.raises(OSError, match="disk full"):
        prefs.write_jsonl([Preference(**GOOD)] * 3, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.jsonl"]


# ---------------------------------------------------------------------------------------
# datasets.Dataset
# ---------------------------------------------------------------------------------------
def test_dataset_export_is_trl_standard_form_and_round_trips():
    records = [Preference(**GOOD, margin=2.0), Preference(**{**GOOD, "chosen": "sure !"}),
               Preference(**{**GOOD, "chosen": "a tie ."}, tie=True)]
    ds = prefs.to_dataset(records)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert len(ds) == 2  # the tie is left out
    assert prefs.from_dataset(ds) == [Preference(**GOOD), Preference(**{**GOOD, "chosen": "sure !"})]
    ds_m = prefs.to_dataset(records, include_margin=True)
    assert ds_m["margin"] == [2.0, 0.0]


def test_from_dataset_names_the_bad_row():
    with pytest.raises(PreferenceError, match="row 1: field 'chosen' is empty"):
        prefs.from_dataset([GOOD, {**GOOD, "chosen": ""}])


# ---------------------------------------------------------------------------------------
# Anthropic HH-RLHF
# ---------------------------------------------------------------------------------------
HH_PROMPT = ("\n\nHuman: What is a cat?\n\nAssistant: An animal.\n\n"
             "Human: Do they purr?\n\nAssistant:")


def test_parse_hh_splits_at_the_last_shared_assistant_turn():
    p = prefs.parse_hh(HH_PROMPT + " Yes, when happy.", HH_PROMPT + " No idea, go away.")
    assert p.prompt == HH_PROMPT
    assert p.chosen == " Yes, when happy."
    assert p.rejected == " No idea, go away."
    assert p.source == "hh-rlhf"


def test_parse_hh_when_responses_share_their_first_words():
    # the common prefix runs into the responses: cut back to the last "Assistant:"
    p = prefs.parse_hh(HH_PROMPT + " Yes, they do.", HH_PROMPT + " Yes, they bark.")
    assert (p.prompt, p.chosen, p.rejected) == (HH_PROMPT, " Yes, they do.", " Yes, they bark.")


def test_parse_hh_errors():
    with pytest.raises(PreferenceError, match="not an HH-RLHF pair"):
        prefs.parse_hh("Hello there", "Hello you")
    with pytest.raises(PreferenceError, match="not an HH-RLHF pair"):
        # the conversations differ before the last assistant turn
        prefs.parse_hh("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: c\n\nAssistant: b")
    with pytest.raises(PreferenceError, match="same text"):
        prefs.parse_hh(HH_PROMPT + " Yes.", HH_PROMPT + " Yes.")


def test_read_hh_jsonl(tmp_path):
    lines = [json.dumps({"chosen": HH_PROMPT + " Yes.", "rejected": HH_PROMPT + " No."}),
             json.dumps({"chosen": "\n\nHuman: hi\n\nAssistant: hello!",
                         "rejected": "\n\nHuman: hi\n\nAssistant: what?"})]
    path = write_lines(tmp_path / "hh.jsonl", lines)
    got = prefs.read_hh_jsonl(path)
    assert [(p.prompt, p.chosen, p.rejected) for p in got] == [
        (HH_PROMPT, " Yes.", " No."), ("\n\nHuman: hi\n\nAssistant:", " hello!", " what?")]
    bad = write_lines(tmp_path / "bad.jsonl", [lines[0], json.dumps({"chosen": "x"})])
    with pytest.raises(PreferenceError, match="line 2: an HH-RLHF line needs 'chosen' and 'rejected'"):
        prefs.read_hh_jsonl(bad)


# ---------------------------------------------------------------------------------------
# toy world pairs and the gold truth
# ---------------------------------------------------------------------------------------
def test_gold_difference_and_agreement():
    prompt = toyworld.format_prompt("tell me about cats .")
    good, bad = "happy to help . cats purr when they are happy .", "go away ."
    right, wrong = Preference(prompt, good, bad), Preference(prompt, bad, good)
    g = toyworld.gold_score(prompt, good).total - toyworld.gold_score(prompt, bad).total
    assert prefs.gold_difference(right) == pytest.approx(g) and g > 0
    assert prefs.gold_agreement([right, right, right, wrong]) == 0.75
    assert prefs.gold_judged([right, right, right, wrong]) == (3, 4)
    # a judge's own verdicts (a reward model's r_c - r_r) instead of the labels
    assert prefs.gold_agreement([right, wrong], judged=[1.0, 1.0]) == 0.5
    # a tied label is no judgement, but a reward model judges a tied pair too
    tied = Preference(prompt, good, bad, tie=True)
    assert prefs.gold_judged([tied]) == (0, 0)
    assert prefs.gold_judged([tied], judged=[-1.0]) == (0, 1)
    # the ended flag counts: an unfinished chosen response loses 2 points
    cut = Preference(prompt, good, bad, chosen_ended=False)
    assert prefs.gold_difference(cut) == pytest.approx(g - 2.0)
    # no gold truth outside the toy world
    hh = Preference(HH_PROMPT, " Yes.", " No.")
    assert prefs.gold_difference(hh) is None and prefs.gold_agreement([hh]) is None


def test_toy_pairs_are_distinct_labelled_and_follow_the_annotator(toy_policy):
    model, tokenizer = toy_policy
    perfect = toyworld.SimulatedAnnotator(noise=0.0, seed=0)
    pairs = prefs.toy_pairs(model, tokenizer, 60, perfect, seed=3, max_new_tokens=30)
    assert len(pairs) == 60
    for p in pairs:
        prefs.validate(p)
        assert p.source == "toy" and p.annotator.startswith("simulated(noise=0.0")
        assert p.prompt.startswith("Human: ") and p.prompt.endswith("Assistant: ")
    # a noiseless annotator never contradicts the gold score
    diffs = [prefs.gold_difference(p) for p in pairs]
    assert all(d >= 0 for d in diffs)
    assert prefs.gold_agreement(pairs) == 1.0
    # same seed, same pairs
    again = prefs.toy_pairs(model, tokenizer, 60, toyworld.SimulatedAnnotator(0.0, seed=0),
                            seed=3, max_new_tokens=30)
    assert again == pairs
