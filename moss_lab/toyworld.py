"""The embedded toy world: a tiny "assistant" task that makes RLHF visible on a laptop.

A prompt asks about one of 15 topics. A response is a few short sentences drawn from
five kinds, and each kind moves one named axis of quality:

    fact      "cats purr when they are happy ."   on topic: helpful; off topic: not
    polite    "happy to help ."                   harmless and friendly
    rude      "that is a silly question ."        harmful
    filler    "let me think ."                    adds length, no content

Responses end with the <eos> token; a degenerate response repeats itself or never ends.

`gold_score` is what "humans really want" in this world, broken into named components
(helpfulness, harmlessness, conciseness, degeneracy). It is used to *measure* quality
and to simulate annotators, never to train a policy directly. `SimulatedAnnotator`
labels a pair with a Bradley-Terry draw on the gold score (Lab 01, Lab 03).

Everything here is deterministic given a seed.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

# ---------------------------------------------------------------------------------------
# The world's content
# ---------------------------------------------------------------------------------------
FACTS: dict[str, list[str]] = {
    "cats": ["cats purr when they are happy .", "cats sleep most of the day .",
             "cats land on their feet .", "cats hunt small mice .",
             "cats clean their fur often ."],
    "dogs": ["dogs wag their tails .", "dogs love long walks .",
             "dogs can learn many tricks .", "dogs have a strong nose .",
             "dogs guard their home ."],
    "rain": ["rain falls from dark clouds .", "rain helps plants grow .",
             "rain fills rivers and lakes .", "rain makes the air cool .",
             "rain comes after warm days ."],
    "coffee": ["coffee is made from roasted beans .", "coffee keeps people awake .",
               "coffee is served hot .", "coffee grows on small trees .",
               "coffee tastes a bit bitter ."],
    "music": ["music is made of notes .", "music can make people dance .",
              "music has rhythm and melody .", "music is played on instruments .",
              "music can calm the mind ."],
    "trees": ["trees give us clean air .", "trees grow tall over years .",
              "trees lose leaves in autumn .", "trees have deep roots .",
              "trees give shade in summer ."],
    "bread": ["bread is baked in an oven .", "bread is made from flour .",
              "bread needs yeast to rise .", "bread tastes good with butter .",
              "bread goes stale in days ."],
    "stars": ["stars shine at night .", "stars are very far away .",
              "stars are huge balls of gas .", "stars form shapes in the sky .",
              "stars burn for billions of years ."],
    "ocean": ["the ocean covers most of the earth .", "the ocean is full of salt .",
              "the ocean has strong waves .", "the ocean is home to whales .",
              "the ocean is very deep ."],
    "bikes": ["bikes have two wheels .", "bikes are good for health .",
              "bikes need air in the tires .", "bikes do not use fuel .",
              "bikes have a chain and pedals ."],
    "books": ["books tell long stories .", "books are made of paper .",
              "books can teach new ideas .", "books are kept in libraries .",
              "books have many pages ."],
    "tea": ["tea is made from leaves .", "tea is served with hot water .",
            "tea can be green or black .", "tea is popular in many lands .",
            "tea can be sweet with honey ."],
    "snow": ["snow falls in winter .", "snow is cold and white .",
             "snow melts in the sun .", "snow is made of ice crystals .",
             "snow covers the hills ."],
    "bees": ["bees make sweet honey .", "bees live in a hive .",
             "bees help flowers grow .", "bees can sting .",
             "bees dance to share news ."],
    "moon": ["the moon circles the earth .", "the moon shines at night .",
             "the moon has many craters .", "the moon changes shape each week .",
             "the moon pulls the tides ."],
}
TOPICS: list[str] = list(FACTS)

POLITE = ["sure !", "happy to help .", "good question !", "thanks for asking .",
          "i hope this helps .", "glad you asked ."]
RUDE = ["that is a silly question .", "go away .", "ask someone else .",
        "i do not care .", "you should know this .", "what a dumb thing to ask ."]
FILLER = ["let me think .", "well , ok .", "so , yes .", "hmm , right .",
          "that is it .", "i think so ."]

QUESTIONS = ["tell me about {t} .", "what do you know about {t} ?", "can you explain {t} ?",
             "say something about {t} .", "i want to learn about {t} .",
             "what are {t} like ?"]

# The chat format shared by the policy and the reward model. The prompt ends with a
# space so that prompt + response is a well-formed string (no glued words on decode).
HUMAN, ASSISTANT = "Human:", "Assistant:"


def format_prompt(question: str) -> str:
    """Wrap a user question in the chat format: 'Human: <question> Assistant: '.
    A prompt already in the chat format is returned as it is."""
    if question.lstrip().startswith(HUMAN):
        return question
    return f"{HUMAN} {question.strip()} {ASSISTANT} "


def question_of(prompt: str) -> str:
    """The user's question inside a chat-formatted prompt (what a person wants to read)."""
    text = prompt.strip()
    if text.startswith(HUMAN):
        text = text[len(HUMAN):]
    if text.endswith(ASSISTANT):
        text = text[:-len(ASSISTANT)]
    return text.strip()


# Every sentence the grammar can produce, mapped to (kind, topic).
SENTENCES: dict[str, tuple[str, str | None]] = {}
for _topic, _facts in FACTS.items():
    for _s in _facts:
        SENTENCES[_s] = ("fact", _topic)
for _kind, _items in (("polite", POLITE), ("rude", RUDE), ("filler", FILLER)):
    for _s in _items:
        SENTENCES[_s] = (_kind, None)


def vocabulary() -> list[str]:
    """All words the toy world uses (prompts and responses), sorted for determinism."""
    words = {HUMAN, ASSISTANT}
    for text in list(SENTENCES) + [q.format(t=t) for q in QUESTIONS for t in TOPICS]:
        words.update(text.split())
    return sorted(words)


_WORDS = frozenset(vocabulary())


# ---------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------
def topic_of(prompt: str) -> str | None:
    """The topic a prompt asks about (None if it names no known topic)."""
    for word in prompt.split():
        if word in FACTS:
            return word
    return None


def has_gold(prompt: str) -> bool:
    """Does the gold score mean something for this prompt? Only for a toy-world prompt:
    one that names a topic and uses only the toy world's words."""
    return topic_of(prompt) is not None and set(prompt.split()) <= _WORDS


def sample_prompts(n: int, seed: int = 0) -> list[str]:
    """n chat-formatted prompts, topics and phrasings drawn uniformly."""
    rng = random.Random(seed)
    return [format_prompt(rng.choice(QUESTIONS).format(t=rng.choice(TOPICS)))
            for _ in range(n)]


# ---------------------------------------------------------------------------------------
# Parsing a response back into sentences
# ---------------------------------------------------------------------------------------
def split_sentences(response: str) -> tuple[list[str], int]:
    """Split a response into known sentences; also count words in unknown chunks.

    A chunk is the words up to and including '.', '!' or '?'; a trailing chunk with no
    end mark is unknown too.
    """
    sentences, unknown_words, chunk = [], 0, []
    for word in response.split():
        chunk.append(word)
        if word in {".", "!", "?"}:
            text = " ".join(chunk)
            if text in SENTENCES:
                sentences.append(text)
            else:
                unknown_words += len(chunk)
            chunk = []
    return sentences, unknown_words + len(chunk)


# ---------------------------------------------------------------------------------------
# The gold preference score
# ---------------------------------------------------------------------------------------
@dataclass
class GoldScore:
    """The true quality of a response, by named component; `total` is their sum."""

    helpfulness: float
    harmlessness: float
    conciseness: float
    degeneracy: float

    @property
    def total(self) -> float:
        return self.helpfulness + self.harmlessness + self.conciseness + self.degeneracy

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "total": self.total}


CONCISE_WORDS = 24  # responses longer than this start to lose conciseness points


def gold_score(prompt: str, response: str, ended: bool = True) -> GoldScore:
    """Score a response to a prompt the way the world's "humans" would.

    helpfulness  = sum over distinct on-topic facts of 1.5, 1.0, 0.5 (diminishing, max 3)
                   - 0.75 per off-topic fact; -1 if there is no on-topic fact at all
    harmlessness = +0.5 if the response opens politely - 1.5 per rude sentence
    conciseness  = -0.05 per word beyond 24 words, - 0.25 per filler sentence
    degeneracy   = -1 per repeated sentence - 0.25 per word outside the grammar
                   - 2 if the response never ended (no <eos>)
    """
    topic = topic_of(prompt)
    sentences, unknown_words = split_sentences(response)
    n_words = len(response.split())

    on_topic: list[str] = []
    off_topic = rude = filler = repeats = 0
    seen: set[str] = set()
    for s in sentences:
        kind, s_topic = SENTENCES[s]
        if s in seen:
            repeats += 1
            continue
        seen.add(s)
        if kind == "fact":
            if s_topic == topic:
                on_topic.append(s)
            else:
                off_topic += 1
        rude += kind == "rude"
        filler += kind == "filler"

    gains = [1.5, 1.0, 0.5]
    helpfulness = sum(gains[: len(on_topic)]) - 0.75 * off_topic - (1.0 if not on_topic else 0.0)
    polite_open = bool(sentences) and SENTENCES[sentences[0]][0] == "polite"
    harmlessness = 0.5 * polite_open - 1.5 * rude
    conciseness = -0.05 * max(0, n_words - CONCISE_WORDS) - 0.25 * filler
    degeneracy = -1.0 * repeats - 0.25 * unknown_words - (0.0 if ended else 2.0)
    return GoldScore(helpfulness, harmlessness, conciseness, degeneracy)


def is_grammatical(response: str) -> bool:
    """True when every word belongs to a known sentence of the grammar."""
    sentences, unknown = split_sentences(response)
    return bool(sentences) and unknown == 0


# ---------------------------------------------------------------------------------------
# Sampling responses of mixed quality (the pretraining corpus)
# ---------------------------------------------------------------------------------------
def sample_response(prompt: str, rng: random.Random) -> tuple[str, bool]:
    """One response of random quality from the grammar; returns (text, ended).

    Each response draws its own style (how on-topic, polite, rude, wordy), so the corpus
    spans good and bad answers and the base model learns to produce both.
    """
    topic = topic_of(prompt) or rng.choice(TOPICS)
    on_topic_p = rng.choice([0.2, 0.5, 0.8, 0.95])
    rude_p = rng.choice([0.0, 0.0, 0.1, 0.3])
    filler_p = rng.choice([0.0, 0.1, 0.3])
    n = rng.choice([1, 2, 2, 3, 3, 3, 4, 4, 5, 6])
    out: list[str] = []
    if rng.random() < 0.4:
        out.append(rng.choice(POLITE))
    for _ in range(n):
        u = rng.random()
        if u < rude_p:
            out.append(rng.choice(RUDE))
        elif u < rude_p + filler_p:
            out.append(rng.choice(FILLER))
        elif rng.random() < on_topic_p:
            out.append(rng.choice(FACTS[topic]))
        else:
            out.append(rng.choice(FACTS[rng.choice(TOPICS)]))
    if rng.random() < 0.2:
        out.append(rng.choice(POLITE))
    ended = True
    if rng.random() < 0.03:  # a degenerate loop that never ends
        out = out[:1] * rng.randint(6, 9)
        ended = False
    return " ".join(out), ended


def sample_corpus(n: int, seed: int = 0) -> list[tuple[str, str, bool]]:
    """n (prompt, response, ended) triples for pretraining the base model."""
    rng = random.Random(seed)
    prompts = sample_prompts(n, seed=seed + 1)
    return [(p, *sample_response(p, rng)) for p in prompts]


# ---------------------------------------------------------------------------------------
# The simulated annotator
# ---------------------------------------------------------------------------------------
@dataclass
class SimulatedAnnotator:
    """Labels pairs like a (noisy, possibly biased) person would.

    P(A preferred) = sigmoid((g_A - g_B + bias * (len_A - len_B)) / noise)

    where g is the gold score and len is the number of words. noise -> 0 gives a perfect
    annotator; larger noise gives more random labels; length_bias > 0 prefers longer
    answers (a known bias of human raters). Lab 03 shows what each does to a reward model.
    """

    noise: float = 1.0
    length_bias: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError("noise must be >= 0")
        self._rng = random.Random(self.seed)

    def prob_a(self, prompt: str, a: str, b: str, ended_a: bool = True, ended_b: bool = True) -> float:
        """P(A is preferred over B) under this annotator."""
        diff = gold_score(prompt, a, ended_a).total - gold_score(prompt, b, ended_b).total
        diff += self.length_bias * (len(a.split()) - len(b.split()))
        if self.noise == 0:
            return 1.0 if diff > 0 else 0.0 if diff < 0 else 0.5
        return 1.0 / (1.0 + math.exp(-diff / self.noise))

    def prefers_a(self, prompt: str, a: str, b: str, ended_a: bool = True, ended_b: bool = True) -> bool:
        """Draw one label: True when the annotator picks A."""
        return self._rng.random() < self.prob_a(prompt, a, b, ended_a, ended_b)
