"""Small random models of real architectures, with a byte-level BPE tokenizer, on disk.

Issue 11: any Hugging Face causal LM folder must go through the whole pipeline offline.
`build_real_assets(folder)` writes, in a few seconds:

    tokenizer        byte-level BPE trained with `tokenizers` on toy-world and HH-style
                     lines; distinct <|pad|> and <|endoftext|> (eos); a Jinja chat template
    gpt2/            GPT2LMHeadModel, n_embd 64, 2 layers, 4 heads (tied embeddings)
    llama/           LlamaForCausalLM, hidden 64, 2 layers, 4 heads, 2 KV heads (grouped-
                     query attention, RoPE, untied LM head)
    nopad/           the GPT-2 model with a tokenizer that has no pad token
    other-tok/       the GPT-2 architecture with a different tokenizer (a reward model base
                     that does not share the policy's vocabulary)
    pairs.jsonl      prompt / chosen / rejected records (chat-formatted by the template)
    hh.jsonl         Anthropic HH-RLHF lines ({"chosen", "rejected"})
    prompts.txt      one prompt per line;  prompts.jsonl  {"prompt": ...} per line

Every model is saved with `save_pretrained` (safetensors) next to its tokenizer, exactly as
a user's checkpoint would be. Nothing touches the network.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

PAD, EOS = "<|pad|>", "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"

# A Qwen/ChatML-like template (what `tokenizer.apply_chat_template` renders).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

HH_QUESTIONS = [
    "How do I bake bread at home?", "What is the capital of France?",
    "Can you help me write a poem about the sea?", "Why is the sky blue?",
    "How can I learn to play the guitar?", "What should I pack for a camping trip?",
    "Tell me a fun fact about octopuses.", "How do I fix a flat bicycle tire?",
    "What is a good name for a cat?", "How do plants make food?",
    "Is it healthy to drink coffee every day?", "How do I start running?",
]
HH_GOOD = [
    "Sure! Here is a simple way to do it, step by step.",
    "Good question. The short answer is that it depends, but here are the basics.",
    "I'd be happy to help. Let's start with the most important part.",
    "Here are a few ideas you might like.",
]
HH_BAD = ["I don't know.", "Figure it out yourself.", "No.", "Why would you ask that?"]


def training_lines() -> list[str]:
    """A few hundred lines for the BPE trainer: toy-world texts and HH-style dialogue."""
    from moss_lab import toyworld

    lines = [p + r for p, r, _ in toyworld.sample_corpus(300, seed=1)]
    lines += [f"\n\nHuman: {q}\n\nAssistant: {a}" for q in HH_QUESTIONS for a in HH_GOOD + HH_BAD]
    lines += [f"{IM_START}user\n{q}{IM_END}\n{IM_START}assistant\n{a}{IM_END}"
              for q in HH_QUESTIONS for a in HH_GOOD]
    return lines


def build_tokenizer(vocab_size: int = 600, pad: str | None = PAD, seed_lines: int = 0):
    """A byte-level BPE PreTrainedTokenizerFast (pad optional) with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [EOS, IM_START, IM_END] + ([pad] if pad else [])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    lines = training_lines()
    if seed_lines:  # a different tokenizer: other merges, other ids
        lines = [line[::-1] for line in lines[:seed_lines]] + lines[seed_lines:]
    tok.train_from_iterator(lines, trainer)
    extra = {"pad_token": pad} if pad else {}
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS,
                                   additional_special_tokens=[IM_START, IM_END], **extra)
    fast.chat_template = CHAT_TEMPLATE
    fast.model_max_length = 256
    return fast


def gpt2_model(tokenizer, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=64, n_layer=2,
                     n_head=4, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                     eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)
    return GPT2LMHeadModel(cfg)


def llama_model(tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=256, tie_word_embeddings=False,
                      eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
                      pad_token_id=tokenizer.pad_token_id, attention_dropout=0.0)
    return LlamaForCausalLM(cfg)


@dataclass
class RealAssets:
    root: Path
    gpt2: Path
    llama: Path
    nopad: Path
    other_tok: Path
    pairs: Path
    hh: Path
    prompts_txt: Path
    prompts_jsonl: Path
    params: dict

    def arch(self, name: str) -> Path:
        return {"gpt2": self.gpt2, "llama": self.llama}[name]


def chat_prompt(tokenizer, question: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": question}],
                                         tokenize=False, add_generation_prompt=True)


def build_real_assets(root: str | Path) -> RealAssets:
    """Write the tokenizers, models and data files described in the module docstring."""
    root = Path(root)
    tok = build_tokenizer()
    params = {}
    paths = {}
    for name, make in (("gpt2", gpt2_model), ("llama", llama_model)):
        model = make(tok)
        params[name] = model.num_parameters()
        paths[name] = root / name
        model.save_pretrained(paths[name])
        tok.save_pretrained(paths[name])
    # GPT-2's own habit: no pad token at all
    bare = build_tokenizer(pad=None)
    paths["nopad"] = root / "nopad"
    gpt2_model(bare).save_pretrained(paths["nopad"])
    bare.save_pretrained(paths["nopad"])
    # a reward-model base whose vocabulary differs from the policy's
    other = build_tokenizer(vocab_size=500, seed_lines=50)
    paths["other_tok"] = root / "other-tok"
    gpt2_model(other, seed=1).save_pretrained(paths["other_tok"])
    other.save_pretrained(paths["other_tok"])

    rng = random.Random(0)
    pairs = []
    for i in range(48):
        q = HH_QUESTIONS[i % len(HH_QUESTIONS)]
        pairs.append({"prompt": chat_prompt(tok, q), "chosen": rng.choice(HH_GOOD),
                      "rejected": rng.choice(HH_BAD)})
    write_jsonl(root / "pairs.jsonl", pairs)
    hh = []
    for i in range(48):
        q = HH_QUESTIONS[i % len(HH_QUESTIONS)]
        head = f"\n\nHuman: {q}\n\nAssistant:"
        if i % 3 == 0:  # a multi-turn conversation
            head = f"\n\nHuman: Hi!\n\nAssistant: Hello, how can I help?{head}"
        hh.append({"chosen": f"{head} {rng.choice(HH_GOOD)}",
                   "rejected": f"{head} {rng.choice(HH_BAD)}"})
    write_jsonl(root / "hh.jsonl", hh)
    prompts = [chat_prompt(tok, q) for q in HH_QUESTIONS]
    # chat prompts span lines: the .txt file holds HH-style one-line prompts instead
    (root / "prompts.txt").write_text(
        "".join(f"Human: {q} Assistant:\n" for q in HH_QUESTIONS), encoding="utf-8")
    write_jsonl(root / "prompts.jsonl", [{"prompt": p} for p in prompts])
    return RealAssets(root, paths["gpt2"], paths["llama"], paths["nopad"], paths["other_tok"],
                      root / "pairs.jsonl", root / "hh.jsonl", root / "prompts.txt",
                      root / "prompts.jsonl", params)


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
