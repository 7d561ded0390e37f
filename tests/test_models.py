"""Tokenizer, the toy base model, and loading models by name (offline)."""
import os
import statistics

import pytest
import torch

from moss_lab import models, pretrain, toyworld
from moss_lab.sampling import generate
from moss_lab.tokenizer import build_toy_tokenizer


def test_tokenizer_round_trip_and_special_tokens():
    tok = build_toy_tokenizer()
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id}) == 4
    prompt = toyworld.sample_prompts(1, seed=0)[0]
    response = "sure ! cats hunt small mice ."
    ids = tok(prompt + response).input_ids
    assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
    assert tok.decode(ids, skip_special_tokens=True) == (prompt + response).strip()
    # decoding the response ids alone gives the response: nothing glued to the prompt
    n_prompt = len(tok(prompt).input_ids)
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True) == response
    assert tok("zebra").input_ids[1] == tok.unk_token_id


def test_base_model_answers_with_eos_and_grammar(toy_policy):
    model, tok = toy_policy
    prompts = toyworld.sample_prompts(200, seed=11)
    samples = generate(model, tok, prompts, max_new_tokens=48, seed=0)
    eos_rate = sum(samples.ended) / len(prompts)
    grammatical = sum(map(toyworld.is_grammatical, samples.responses)) / len(prompts)
    gold = [toyworld.gold_score(p, r, e).total
            for p, r, e in zip(prompts, samples.responses, samples.ended)]
    assert eos_rate >= 0.9, eos_rate
    assert grammatical >= 0.8, grammatical
    # mixed quality: room for RLHF to improve, and some answers already good
    assert statistics.mean(gold) < 1.5 and max(gold) >= 3.0


def test_pretraining_is_deterministic_given_a_seed():
    tok = build_toy_tokenizer()
    config = pretrain.PretrainConfig(n_texts=256, epochs=1, batch_size=64, seed=3)
    a, loss_a = pretrain.pretrain(tok, config)
    b, loss_b = pretrain.pretrain(tok, config)
    c, _ = pretrain.pretrain(tok, pretrain.PretrainConfig(n_texts=256, epochs=1, seed=4))
    assert loss_a == loss_b
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.transformer.wte.weight, c.transformer.wte.weight)


@pytest.mark.parametrize("size", sorted(pretrain.PRESETS))
def test_every_size_preset_has_a_toy_name_and_its_shape(size):
    n_layer, n_embd, n_head = pretrain.PRESETS[size]
    assert models.resolve_toy(f"toy-{size}") == size
    config = pretrain.make_model(build_toy_tokenizer(), size).config
    assert (config.n_layer, config.n_embd, config.n_head) == (n_layer, n_embd, n_head)


def test_load_from_local_folder_offline(tmp_path):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tok = build_toy_tokenizer()
    torch.manual_seed(0)
    model = pretrain.make_model(tok, "xs")
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, loaded_tok = models.load_policy(str(tmp_path), device="cpu")
    assert loaded_tok.pad_token_id == tok.pad_token_id != loaded_tok.eos_token_id
    assert loaded_tok.padding_side == "left"
    ids = tok(["Human: tell me about cats . Assistant: "], return_tensors="pt").input_ids
    assert torch.allclose(loaded(ids).logits, model(ids).logits)


def test_model_without_pad_token_gets_a_distinct_one(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    tok = build_toy_tokenizer()
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer, eos_token="<eos>")
    GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_layer=1, n_embd=16, n_head=2)).save_pretrained(tmp_path)
    bare.save_pretrained(tmp_path)
    model, loaded = models.load_policy(str(tmp_path), device="cpu")
    assert loaded.pad_token_id is not None and loaded.pad_token_id != loaded.eos_token_id
    assert model.get_input_embeddings().num_embeddings >= len(loaded)


def test_unknown_model_name_gives_a_clear_error():
    with pytest.raises(models.ModelNotFoundError, match="unknown model 'no-such/model-xyz'"):
        models.load_policy("no-such/model-xyz")


def test_missing_or_corrupt_cache_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path))
    # a small recipe so that the rebuild takes a second, not a minute
    monkeypatch.setattr(models, "PretrainConfig",
                        lambda **kw: pretrain.PretrainConfig(n_texts=128, epochs=1, **kw))
    folder = models.build_toy_model("xs", seed=0, progress=False)  # missing -> built
    assert (folder / models.INFO_FILE).is_file()
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="unreadable"):
        model, tok = models.load_policy("toy", device="cpu")
    assert model.num_parameters() > 0
    # a build interrupted before its marker file is not trusted either
    (folder / models.INFO_FILE).unlink()
    assert not models._cache_ok(folder)
    models.build_toy_model("xs", seed=0, progress=False)
    assert models._cache_ok(folder)
