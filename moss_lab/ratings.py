"""Ratings: one record per response, "this response gets these scores from 1 to 5".

MOSS-RLHF's evaluators did more than click "A is better": they scored each response on
quality, safety, relevance and fluency and wrote specific feedback. A `Rating` is that
record; a reward model can then be any function fitted to the scores
(moss_lab.rating_reward), not only a Bradley-Terry model on pairs.

    Rating / validate           one rated response, or a RatingError naming the field
    read_jsonl / write_jsonl    one JSON object per line; nothing half-loaded or half-written
    to_dataset                  datasets.Dataset: prompt, response, overall, one column per aspect
    SimulatedRater              rates toy-world responses from the gold score, with noise
    toy_ratings                 responses sampled from a policy, rated by a SimulatedRater

How the simulated rater maps the toy world's truth to stars (moss_lab.toyworld): each
aspect has a latent value v from the gold score's parse of the response, scaled linearly
so that v = lo gives 1 star and v = hi gives 5, plus Gaussian noise in star units:

    stars = clip(round(1 + 4 (v - lo) / (hi - lo) + noise * N(0, 1)), 1, 5)

    aspect     v (from the gold score)                          lo    hi
    quality    helpfulness (distinct on-topic facts, minus       -2.5  3    3 facts: 5
               off-topic ones)
    safety     harmlessness (polite opening, rude sentences)     -1.5  0.5  one rude: 1
    relevance  share of the fact sentences on the prompt's        0    1    no facts: 1
               topic (the topic match inside helpfulness)
    fluency    conciseness + degeneracy (repeats, words outside  -2.5  0    clean: 5
               the grammar, no <eos>, filler, length)
    overall    gold total (+ length_bias * words, a rater bias)  -4    3    median ~3

The ranges put the toy base model's responses across the whole scale (its median gold
total, 0.25, is 3 stars). noise = 0 rates the gold exactly (up to rounding).
"""
from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from . import files, toyworld
from .preferences import MAX_CHARS, MAX_REPORTED_ERRORS, _json_lines

ASPECTS = ("quality", "safety", "relevance", "fluency")
SCALE = (1, 5)  # lowest and highest star
MAX_COMMENT_CHARS = 4_000  # a specific remark is a few sentences; more is a paste by mistake


class RatingError(ValueError):
    """A rating record or file that cannot be used; the message says which field and why."""


@dataclass
class Rating:
    """One rated response.

    aspects     {aspect: stars 1-5} for some or all of ASPECTS (a rater may skip one)
    overall     stars 1-5 for the response as a whole: what a reward model learns
    comment     the rater's specific feedback, plain text (never rendered as HTML)
    ended       False when the response was cut off before <eos> (the gold score needs it)
    annotator, source, created_at   as in a Preference
    """

    prompt: str
    response: str
    overall: int
    aspects: dict[str, int] = field(default_factory=dict)
    comment: str = ""
    ended: bool = True
    annotator: str | None = None
    source: str | None = None
    created_at: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


_FIELD_NAMES = {f.name for f in fields(Rating)}


# ---------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------
def _stars(value, name: str) -> int:
    """An integer from 1 to 5 (4.0 is accepted as 4), or a RatingError naming the field."""
    lo, hi = SCALE
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RatingError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RatingError(f"{name} must be a whole number from {lo} to {hi}, got {value!r} "
                          "(ratings are stars: no fractions)")
    if not lo <= value <= hi:
        raise RatingError(f"{name} is out of range: {value!r} (ratings go from {lo} to {hi})")
    return int(value)


def validate(record) -> Rating:
    """Check one record and return it as a Rating; raise RatingError otherwise.

    Required: prompt and response (non-empty strings of at most MAX_CHARS characters) and
    overall (1-5). aspects: an object whose keys are among ASPECTS and values 1-5. comment:
    a string of at most MAX_COMMENT_CHARS. Unknown top-level keys are ignored.
    """
    if isinstance(record, Rating):
        record = record.to_dict()
    if not isinstance(record, dict):
        raise RatingError(f"a rating must be a JSON object, got {type(record).__name__}")
    missing = [k for k in ("prompt", "response", "overall") if k not in record]
    if missing:
        raise RatingError(f"missing field(s): {', '.join(missing)} "
                          "(a rating needs prompt, response and overall)")
    for key in ("prompt", "response"):
        value = record[key]
        if not isinstance(value, str):
            raise RatingError(f"field {key!r} must be a string, got {type(value).__name__}")
        if not value.strip():
            raise RatingError(f"field {key!r} is empty")
        if len(value) > MAX_CHARS:
            raise RatingError(f"field {key!r} is too long: {len(value):,} characters "
                              f"(the limit is {MAX_CHARS:,})")
    out = {k: v for k, v in record.items() if k in _FIELD_NAMES}
    out["overall"] = _stars(record["overall"], "field 'overall'")
    aspects = record.get("aspects") or {}
    if not isinstance(aspects, dict):
        raise RatingError(f"field 'aspects' must be an object like {{\"quality\": 4}}, "
                          f"got {type(aspects).__name__}")
    unknown = [k for k in aspects if k not in ASPECTS]
    if unknown:
        raise RatingError(f"unknown aspect(s) {', '.join(map(repr, unknown))}: "
                          f"the aspects are {', '.join(ASPECTS)}")
    out["aspects"] = {k: _stars(aspects[k], f"aspect {k!r}") for k in ASPECTS if k in aspects}
    comment = record.get("comment")
    comment = "" if comment is None else comment
    if not isinstance(comment, str):
        raise RatingError(f"field 'comment' must be a string, got {type(comment).__name__}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise RatingError(f"field 'comment' is too long: {len(comment):,} characters (the "
                          f"limit is {MAX_COMMENT_CHARS:,}); keep the specific points")
    out["comment"] = comment
    if "ended" in record and not isinstance(record["ended"], bool):
        raise RatingError(f"field 'ended' must be true or false, got {record['ended']!r}")
    for key in ("annotator", "source", "created_at"):
        if record.get(key) is not None and not isinstance(record[key], str):
            raise RatingError(f"field {key!r} must be a string or null, got {record[key]!r}")
    return Rating(**out)


# ---------------------------------------------------------------------------------------
# JSONL and datasets.Dataset
# ---------------------------------------------------------------------------------------
def read_jsonl(path: str | Path) -> list[Rating]:
    """Read one rating per line; every line is checked before anything is returned, and a
    file with bad lines raises one RatingError listing them (nothing is loaded)."""
    path = Path(path)
    ratings, errors = [], []
    for number, obj in _json_lines(path, errors):
        try:
            ratings.append(validate(obj))
        except RatingError as err:
            errors.append(f"line {number}: {err}")
    if errors:
        shown, more = errors[:MAX_REPORTED_ERRORS], len(errors) - MAX_REPORTED_ERRORS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise RatingError(f"{path}: {len(errors)} bad line(s), nothing was loaded:\n  "
                          + "\n  ".join(shown) + tail)
    return ratings


def write_jsonl(ratings, path: str | Path) -> Path:
    """Write ratings, one JSON object per line, atomically (all validated first)."""
    lines = []
    for i, r in enumerate(ratings):
        try:
            lines.append(json.dumps(validate(r).to_dict(), ensure_ascii=False))
        except RatingError as err:
            raise RatingError(f"rating {i}: {err}") from None
    return files.write_text(Path(path), "".join(line + "\n" for line in lines))


def to_dataset(ratings):
    """A datasets.Dataset: prompt, response, overall, one column per aspect (None where
    the rater skipped it), comment."""
    from datasets import Dataset

    rows = [validate(r) for r in ratings]
    data = {"prompt": [r.prompt for r in rows], "response": [r.response for r in rows],
            "overall": [r.overall for r in rows]}
    for a in ASPECTS:
        data[a] = [r.aspects.get(a) for r in rows]
    data["comment"] = [r.comment for r in rows]
    return Dataset.from_dict(data)


# ---------------------------------------------------------------------------------------
# The simulated rater
# ---------------------------------------------------------------------------------------
# aspect -> (lo, hi): the latent value that gets 1 star and the one that gets 5
RANGES: dict[str, tuple[float, float]] = {
    "quality": (-2.5, 3.0), "safety": (-1.5, 0.5), "relevance": (0.0, 1.0),
    "fluency": (-2.5, 0.0), "overall": (-4.0, 3.0),
}


def latent_aspects(prompt: str, response: str, ended: bool = True) -> dict[str, float]:
    """The toy world's truth behind each rating (see the table in the module docstring)."""
    gold = toyworld.gold_score(prompt, response, ended)
    topic = toyworld.topic_of(prompt)
    sentences, _ = toyworld.split_sentences(response)
    fact_topics = [t for kind, t in map(toyworld.SENTENCES.get, sentences) if kind == "fact"]
    relevance = sum(t == topic for t in fact_topics) / len(fact_topics) if fact_topics else 0.0
    return {"quality": gold.helpfulness, "safety": gold.harmlessness, "relevance": relevance,
            "fluency": gold.conciseness + gold.degeneracy, "overall": gold.total}


def to_stars(value: float, lo: float, hi: float, shift: float = 0.0) -> int:
    """The continuous rating 1 + 4 (value - lo) / (hi - lo) + shift, rounded and clipped
    to 1-5 (shift: the rater's noise and bias, in stars)."""
    stars = 1 + 4 * (value - lo) / (hi - lo) + shift
    return int(min(max(round(stars), SCALE[0]), SCALE[1]))


def feedback(prompt: str, response: str, ended: bool = True) -> str:
    """A specific comment like a careful rater's: what is wrong, sentence by sentence."""
    topic = toyworld.topic_of(prompt)
    sentences, unknown = toyworld.split_sentences(response)
    notes, seen = [], set()
    for s in sentences:
        kind, s_topic = toyworld.SENTENCES[s]
        if s in seen:
            notes.append(f"repeats '{s}'")
        elif kind == "rude":
            notes.append(f"rude: '{s}'")
        elif kind == "fact" and s_topic != topic:
            notes.append(f"off topic: '{s}'")
        seen.add(s)
    if not any(toyworld.SENTENCES[s] == ("fact", topic) for s in sentences):
        notes.append(f"says nothing about {topic}" if topic else "answers no question")
    if unknown:
        notes.append(f"{unknown} garbled word(s)")
    if not ended:
        notes.append("never ends")
    return "; ".join(notes) or "good answer"


@dataclass
class SimulatedRater:
    """Rates responses like a (noisy, possibly biased) person would, aspect by aspect.

    noise        std of the Gaussian added to each continuous rating, in stars (0: exact)
    length_bias  stars added to `overall` per word (> 0: prefers longer answers)
    comments     write a specific comment (`feedback`) with each rating
    seed         ratings are deterministic given the seed and the order of calls
    """

    noise: float = 0.5
    length_bias: float = 0.0
    comments: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a number >= 0 (stars of Gaussian noise), got {self.noise!r}")
        self._rng = random.Random(self.seed)

    @property
    def name(self) -> str:
        return f"simulated-rater(noise={self.noise}, length_bias={self.length_bias})"

    def rate(self, prompt: str, response: str, ended: bool = True, source: str = "toy") -> Rating:
        """Draw one rating of `response` (all four aspects, overall, comment)."""
        latent = latent_aspects(prompt, response, ended)
        shift = {k: self.noise * self._rng.gauss(0.0, 1.0) for k in latent}  # in stars
        shift["overall"] += self.length_bias * len(response.split())
        stars = {k: to_stars(v, *RANGES[k], shift[k]) for k, v in latent.items()}
        overall = stars.pop("overall")
        return Rating(prompt, response, overall, stars,
                      feedback(prompt, response, ended) if self.comments else "",
                      ended=ended, annotator=self.name, source=source)


def toy_ratings(model, tokenizer, n: int, rater: SimulatedRater, seed: int = 0,
                max_new_tokens: int = 40, temperature: float = 1.0, batch_size: int = 512,
                prompts: list[str] | None = None) -> list[Rating]:
    """n ratings: one policy sample per prompt, rated by the simulated rater.

    Prompts come from toyworld.sample_prompts(seed) unless given; empty responses are
    dropped and replaced with fresh prompts until there are n.
    """
    from .sampling import generate

    out: list[Rating] = []
    round_ = 0
    while len(out) < n:
        need = n - len(out)
        if prompts is not None and round_ == 0:
            batch_prompts = list(prompts)[:n]
        else:  # a small margin covers the empty responses we drop
            batch_prompts = toyworld.sample_prompts(need + need // 20 + 1, seed=seed + 1000 * round_)
        for start in range(0, len(batch_prompts), batch_size):
            chunk = batch_prompts[start:start + batch_size]
            s = generate(model, tokenizer, chunk, max_new_tokens=max_new_tokens,
                         temperature=temperature, seed=seed + 7919 * round_ + start)
            for prompt, response, ended in zip(chunk, s.responses, s.ended):
                if response.strip() and len(out) < n:
                    out.append(rater.rate(prompt, response, ended))
        round_ += 1
        if round_ > 20:
            raise RuntimeError("could not sample enough non-empty responses from this model")
    return out
