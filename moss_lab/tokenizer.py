"""A word-level tokenizer for the toy world, saved as a `PreTrainedTokenizerFast`.

Every word of the toy world's grammar is one token; <pad>, <bos>, <eos> and <unk> are
distinct special tokens (reward models read the last non-pad token, so pad must not be
eos). The tokenizer puts <bos> in front of every text. Decoding joins words with single
spaces, and toy prompts end with a space, so prompt + response never glues two words.
"""
from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from . import toyworld

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL = [PAD, BOS, EOS, UNK]


def build_toy_tokenizer() -> PreTrainedTokenizerFast:
    """The toy world's tokenizer: specials first, then the grammar's words, sorted."""
    vocab = {tok: i for i, tok in enumerate(SPECIAL + toyworld.vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK,
        padding_side="left",  # generation needs the prompt flush against the response
    )
    fast.model_max_length = 128
    return fast
