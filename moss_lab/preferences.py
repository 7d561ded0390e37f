"""Preference data: one record per comparison, "for this prompt, `chosen` beat `rejected`".

The record is trl's standard form (prompt / chosen / rejected) plus our own fields
(tie, annotator, source, created_at, margin, and whether each response ended with <eos>,
which the toy world's gold score needs). This module reads and writes such records:

    validate(record)            dict -> Preference, or a PreferenceError naming the problem
    read_jsonl / write_jsonl    one JSON object per line; writing is atomic
    to_dataset / from_dataset   datasets.Dataset with prompt/chosen/rejected (trl-ready)
    parse_hh / read_hh_jsonl    Anthropic HH-RLHF ("\\n\\nHuman: ... \\n\\nAssistant: ...")
    toy_pairs                   two policy samples per prompt, labelled by a simulated annotator
    gold_agreement              how often labels (or a judge) agree with the gold score

Files are parsed as JSON only (never unpickled), strictly as UTF-8, and every text field
is limited to MAX_CHARS characters. Lab 02 and Lab 03 use these records.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from . import files

from . import toyworld

MAX_CHARS = 20_000  # per text field: a long HH conversation is ~5k; more is almost surely a mistake
TEXT_FIELDS = ("prompt", "chosen", "rejected")
MAX_REPORTED_ERRORS = 10  # a broken file lists this many problems, then a count


class PreferenceError(ValueError):
    """A preference record or file that cannot be used; the message says where and why."""


@dataclass
class Preference:
    """One comparison: for `prompt`, the response `chosen` was preferred to `rejected`.

    tie         the annotator could not choose (chosen/rejected order then means nothing)
    annotator   who labelled it ("simulated(noise=1.0)", a user name, ...)
    source      where the pair comes from ("toy", "hh-rlhf", "app", ...)
    created_at  ISO-8601 time of the vote, if known
    margin      how much better chosen is (e.g. a graded rating); the reward model can use
                it as a per-pair margin in its loss, as trl's RewardTrainer does
    chosen_ended / rejected_ended
                False when the response was cut off before <eos> (the gold score punishes it)
    """

    prompt: str
    chosen: str
    rejected: str
    tie: bool = False
    annotator: str | None = None
    source: str | None = None
    created_at: str | None = None
    margin: float | None = None
    chosen_ended: bool = True
    rejected_ended: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


_FIELD_NAMES = {f.name for f in fields(Preference)}


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------
def validate(record: dict) -> Preference:
    """Check one record and return it as a Preference; raise PreferenceError otherwise.

    Required: prompt, chosen, rejected, non-empty strings of at most MAX_CHARS characters,
    with chosen != rejected. Optional fields must have the right type. Unknown keys are
    ignored (datasets often carry extra columns).
    """
    if isinstance(record, Preference):
        record = record.to_dict()
    if not isinstance(record, dict):
        raise PreferenceError(f"a record must be a JSON object, got {type(record).__name__}")
    missing = [k for k in TEXT_FIELDS if k not in record]
    if missing:
        raise PreferenceError(f"missing field(s): {', '.join(missing)} "
                              f"(a record needs {', '.join(TEXT_FIELDS)})")
    for key in TEXT_FIELDS:
        value = record[key]
        if not isinstance(value, str):
            raise PreferenceError(f"field {key!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise PreferenceError(f"field {key!r} is empty")
        if len(value) > MAX_CHARS:
            raise PreferenceError(f"field {key!r} is too long: {len(value):,} characters "
                                  f"(the limit is {MAX_CHARS:,})")
    if record["chosen"] == record["rejected"]:
        raise PreferenceError("chosen and rejected are the same text: a pair must compare "
                              "two different responses")
    for key in ("tie", "chosen_ended", "rejected_ended"):
        if key in record and not isinstance(record[key], bool):
            raise PreferenceError(f"field {key!r} must be true or false, got {record[key]!r}")
    for key in ("annotator", "source", "created_at"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise PreferenceError(f"field {key!r} must be a string or null, got {record[key]!r}")
    margin = record.get("margin")
    if margin is not None:
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not math.isfinite(margin):
            raise PreferenceError(f"field 'margin' must be a finite number or null, got {margin!r}")
        record = {**record, "margin": float(margin)}
    return Preference(**{k: v for k, v in record.items() if k in _FIELD_NAMES})


def _raise_collected(errors: list[str], path: Path) -> None:
    if errors:
        shown = errors[:MAX_REPORTED_ERRORS]
        more = len(errors) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise PreferenceError(f"{path}: {len(errors)} bad line(s), nothing was loaded:\n  "
                              + "\n  ".join(shown) + tail)


def _json_lines(path: Path, errors: list[str]):
    """Yield (line number, parsed object) for the non-blank lines; collect problems."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                errors.append(f"line {number}: not valid UTF-8 (byte 0x{raw[err.start]:02x} "
                              f"at position {err.start}); save the file as UTF-8")
                continue
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as err:
                errors.append(f"line {number}: bad JSON ({err.msg} at column {err.colno})")
            except RecursionError:  # e.g. [[[[...]]]] thousands deep: no record is like that
                errors.append(f"line {number}: JSON nested too deeply to read (a record is "
                              "one flat object of prompt/chosen/rejected texts)")


# ---------------------------------------------------------------------------------------
# JSONL and datasets.Dataset
# ---------------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> list[Preference]:
    """Read one record per line; every line is checked before anything is returned."""
    path = Path(path)
    prefs, errors = [], []
    for number, obj in _json_lines(path, errors):
        try:
            prefs.append(validate(obj))
        except PreferenceError as err:
            errors.append(f"line {number}: {err}")
    _raise_collected(errors, path)
    return prefs


def write_jsonl(prefs, path: str | Path) -> Path:
    """Write records, one JSON object per line, atomically.

    All records are validated first, the text goes to a temporary file in the same folder
    and is renamed over `path` only when complete: a failure never leaves half a file.
    """
    path = Path(path)
    lines = []
    for i, p in enumerate(prefs):
        try:
            lines.append(json.dumps(validate(p).to_dict(), ensure_ascii=False))
        except PreferenceError as err:
            raise PreferenceError(f"record {i}: {err}") from None
    return files.write_text(path, "".join(line + "\n" for line in lines))


def to_dataset(prefs, include_margin: bool = False):
    """A datasets.Dataset with prompt/chosen/rejected columns, ready for trl's RewardTrainer.

    Ties are left out (trl has no notion of a tie). With include_margin=True a `margin`
    column is added (None -> 0.0); trl's RewardTrainer then subtracts it inside the loss.
    """
    from datasets import Dataset

    rows = [validate(p) for p in prefs]
    rows = [p for p in rows if not p.tie]
    data = {k: [getattr(p, k) for p in rows] for k in TEXT_FIELDS}
    if include_margin:
        data["margin"] = [p.margin or 0.0 for p in rows]
    return Dataset.from_dict(data)


def from_dataset(dataset) -> list[Preference]:
    """Validate the rows of a datasets.Dataset (or any iterable of dicts) into Preferences."""
    prefs = []
    for i, row in enumerate(dataset):
        try:
            prefs.append(validate(dict(row)))
        except PreferenceError as err:
            raise PreferenceError(f"row {i}: {err}") from None
    return prefs


# ---------------------------------------------------------------------------------------
# Anthropic HH-RLHF
# ---------------------------------------------------------------------------------------
HH_ASSISTANT = "\n\nAssistant:"


def parse_hh(chosen_text: str, rejected_text: str) -> Preference:
    """Split an HH-RLHF pair into prompt / chosen / rejected.

    Both texts are the same conversation up to the last assistant turn. The prompt is
    their longest common prefix, cut back to just after its last "\\n\\nAssistant:";
    the responses are the rest (they keep their leading space, so prompt + chosen gives
    back the original text).
    """
    for name, text in (("chosen", chosen_text), ("rejected", rejected_text)):
        if not isinstance(text, str):
            raise PreferenceError(f"HH field {name!r} must be a string, got {type(text).__name__}")
    common = 0
    for a, b in zip(chosen_text, rejected_text):
        if a != b:
            break
        common += 1
    cut = chosen_text.rfind(HH_ASSISTANT, 0, common)
    if cut < 0 or cut + len(HH_ASSISTANT) > common:
        raise PreferenceError("not an HH-RLHF pair: the two texts share no prefix ending "
                              "with '\\n\\nAssistant:'")
    end = cut + len(HH_ASSISTANT)
    return validate({"prompt": chosen_text[:end], "chosen": chosen_text[end:],
                     "rejected": rejected_text[end:], "source": "hh-rlhf"})


def read_hh_jsonl(path: str | Path) -> list[Preference]:
    """Read an HH-RLHF JSONL file (objects with "chosen" and "rejected" texts)."""
    path = Path(path)
    prefs, errors = [], []
    for number, obj in _json_lines(path, errors):
        try:
            if not isinstance(obj, dict) or "chosen" not in obj or "rejected" not in obj:
                raise PreferenceError("an HH-RLHF line needs 'chosen' and 'rejected' texts")
            prefs.append(parse_hh(obj["chosen"], obj["rejected"]))
        except PreferenceError as err:
            errors.append(f"line {number}: {err}")
    _raise_collected(errors, path)
    return prefs


# ---------------------------------------------------------------------------------------
# The toy world: pairs labelled by a simulated annotator, and the gold truth
# ---------------------------------------------------------------------------------------
def toy_pairs(model, tokenizer, n: int, annotator: toyworld.SimulatedAnnotator,
              seed: int = 0, max_new_tokens: int = 40, temperature: float = 1.0,
              batch_size: int = 512, prompts: list[str] | None = None) -> list[Preference]:
    """n pairs: two samples of the policy per prompt, labelled by the simulated annotator.

    Prompts come from toyworld.sample_prompts(seed) unless given. Pairs whose two samples
    are identical are dropped and replaced with fresh prompts until there are n.
    """
    from .sampling import generate

    label = f"simulated(noise={annotator.noise}, length_bias={annotator.length_bias})"
    pairs: list[Preference] = []
    round_ = 0
    while len(pairs) < n:
        need = n - len(pairs)
        if prompts is not None and round_ == 0:
            batch_prompts = list(prompts)[:n]
        else:  # a margin of 10% covers the identical pairs we drop
            batch_prompts = toyworld.sample_prompts(need + need // 10 + 1, seed=seed + 1000 * round_)
        for start in range(0, len(batch_prompts), batch_size):
            chunk = batch_prompts[start:start + batch_size]
            s = generate(model, tokenizer, chunk + chunk, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed + 7919 * round_ + start)
            k = len(chunk)
            for i, prompt in enumerate(chunk):
                a, b, ended_a, ended_b = s.responses[i], s.responses[k + i], s.ended[i], s.ended[k + i]
                if a == b or not a.strip() or not b.strip() or len(pairs) >= n:
                    continue
                a_wins = annotator.prefers_a(prompt, a, b, ended_a, ended_b)
                c, r = (a, b) if a_wins else (b, a)
                c_end, r_end = (ended_a, ended_b) if a_wins else (ended_b, ended_a)
                pairs.append(Preference(prompt, c, r, annotator=label, source="toy",
                                        chosen_ended=c_end, rejected_ended=r_end))
        round_ += 1
        if round_ > 20:
            raise RuntimeError("could not sample enough distinct pairs from this model")
    return pairs


def has_gold(pref: Preference) -> bool:
    """True when the prompt is a toy-world prompt, so that the gold score means something."""
    return toyworld.has_gold(pref.prompt)


def gold_difference(pref: Preference) -> float | None:
    """gold(chosen) - gold(rejected) for a toy-world pair; None when there is no gold truth."""
    if not has_gold(pref):
        return None
    return (toyworld.gold_score(pref.prompt, pref.chosen, pref.chosen_ended).total
            - toyworld.gold_score(pref.prompt, pref.rejected, pref.rejected_ended).total)


def gold_agreement(prefs, judged=None) -> float | None:
    """Fraction of pairs a judge orders as the gold score does (None: nothing to judge).

    The judge is the label itself (chosen over rejected) by default, or `judged`: one
    number per pair, > 0 when the judge prefers `chosen` (a reward model's r_c - r_r).
    For the simulated annotator this is the ceiling a reward model trained on its labels
    should be compared with. See gold_judged for what is skipped.
    """
    agree, n = gold_judged(prefs, judged)
    return agree / n if n else None


def gold_judged(prefs, judged=None) -> tuple[int, int]:
    """(agreements, pairs judged): the one place where agreement with gold is counted,
    for labels, reward models and the app's votes alike.

    Tied labels (when the label is the judge), pairs without gold truth and gold ties are
    skipped.
    """
    prefs = list(prefs)
    by_label = judged is None  # a tied label is no judgement; a reward model still judges
    judged = [1.0] * len(prefs) if by_label else [float(j) for j in judged]
    agree = n = 0
    for pref, judge in zip(prefs, judged):
        gold = None if (by_label and pref.tie) else gold_difference(pref)
        if gold is None or abs(gold) <= 1e-9:
            continue
        n += 1
        agree += (judge > 0) == (gold > 0)
    return agree, n
