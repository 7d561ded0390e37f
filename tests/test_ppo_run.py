"""PPO end to end on the toy world: the run improves the gold score, writes well-formed
files, is reproducible, and stops cleanly on a stop flag or a NaN.

The toy reward model is trained once (~1 min) and cached in the shared test data home.
"""
import json
import math

import pytest
import torch

from moss_lab import toyworld
from moss_lab.ppo import PPOConfig, train_ppo
from moss_lab.ppo import trainer as trainer_module
from moss_lab.ppo.rollout import policy_forward, sample, sequence_inputs, top_p_filter

pytestmark = pytest.mark.slow

REQUIRED = ["iteration", "reward/score", "reward/gold", "objective/kl", "objective/entropy",
            "policy/clipfrac", "policy/approx_kl", "val/value_loss", "val/explained_variance",
            "response/length", "response/eos_rate", "response/perplexity", "time/rollout_s",
            "time/train_s", "time/step_s", "time/model_s"]

TINY = dict(iterations=3, batch_size=16, minibatch_size=8, max_new_tokens=12,
            critic_pretrain_steps=1, save_final=False)


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# ---------------------------------------------------------------------------------------
# The rollout's mechanics: KV-cache sampling and padding
# ---------------------------------------------------------------------------------------
def tiny_llama(tok):
    """A random Llama (rotary positions, grouped-query attention): not only GPT-2 works."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    return LlamaForCausalLM(cfg).eval()


@pytest.mark.parametrize("arch", ["toy-gpt2", "llama"])
def test_kv_cache_sampling_matches_full_recompute(toy_policy, arch):
    model, tok = toy_policy
    if arch == "llama":
        model = tiny_llama(tok)
    prompts = toyworld.sample_prompts(6, seed=3)
    enc = tok(prompts, return_tensors="pt", padding=True)
    assert (enc.attention_mask == 0).any(), "the test needs prompts of different lengths"
    ids, mask = sample(model, enc.input_ids, enc.attention_mask, 10, tok.eos_token_id,
                       tok.pad_token_id, temperature=0.9, top_p=0.95,
                       generator=torch.Generator().manual_seed(0))
    # reference: no cache, the whole padded sequence re-run at every step
    gen = torch.Generator().manual_seed(0)
    seq, attn = enc.input_ids, enc.attention_mask
    done = torch.zeros(len(prompts), dtype=torch.bool)
    for t in range(ids.shape[1]):
        pos = (attn.cumsum(1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=seq, attention_mask=attn, position_ids=pos).logits[:, -1]
        probs = torch.softmax(top_p_filter(logits / 0.9, 0.95), dim=-1)
        nxt = torch.multinomial(probs, 1, generator=gen).squeeze(1)
        nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)
        assert torch.equal(nxt, ids[:, t]), f"step {t}"
        assert torch.equal(~done, mask[:, t].bool())
        done |= nxt == tok.eos_token_id
        seq = torch.cat([seq, nxt[:, None]], 1)
        attn = torch.cat([attn, torch.ones_like(attn[:, :1])], 1)


@pytest.mark.parametrize("arch", ["toy-gpt2", "llama"])
def test_padding_does_not_change_logprobs(toy_policy, arch):
    model, tok = toy_policy
    if arch == "llama":
        model = tiny_llama(tok)
    prompts = ["Human: tell me about cats . Assistant: ",
               "Human: what do you know about the ocean ? Assistant: "]
    responses = ["cats purr when they are happy .", "the ocean is deep . sure !"]
    enc = tok(prompts, return_tensors="pt", padding=True)
    resp = [tok(r, add_special_tokens=False).input_ids + [tok.eos_token_id] for r in responses]
    T = max(map(len, resp))
    r_ids = torch.full((2, T), tok.pad_token_id)
    r_mask = torch.zeros(2, T)
    for i, r in enumerate(resp):
        r_ids[i, :len(r)], r_mask[i, :len(r)] = torch.tensor(r), 1
    inputs = sequence_inputs(enc.input_ids, enc.attention_mask, r_ids, r_mask)
    with torch.no_grad():
        batched, _ = policy_forward(model, inputs, r_ids)
        for i in range(2):  # each row alone, no padding at all
            ids = torch.tensor([tok(prompts[i]).input_ids + resp[i]])
            logits = model(input_ids=ids).logits[0, -len(resp[i]) - 1:-1]
            alone = torch.log_softmax(logits, -1).gather(1, torch.tensor(resp[i])[:, None])[:, 0]
            torch.testing.assert_close(batched[i, :len(resp[i])], alone, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------
# A 20-iteration run
# ---------------------------------------------------------------------------------------
def test_twenty_iterations_raise_gold_and_write_the_run(tmp_path):
    run = tmp_path / "run"
    seen = []
    result = train_ppo(PPOConfig(iterations=20, sample_every=5), run_dir=run,
                       on_metrics=seen.append)
    assert result.status == "finished" and result.iterations == 20
    rows = read_jsonl(run / "metrics.jsonl")
    assert rows == seen == result.history
    assert [r["iteration"] for r in rows] == list(range(1, 21))
    for row in rows:
        missing = [k for k in REQUIRED if k not in row]
        assert not missing, f"missing metrics {missing}"
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
        assert row["val/explained_variance"] <= 1.0
    gold = [r["reward/gold"] for r in rows]
    start, end = sum(gold[:3]) / 3, sum(gold[-5:]) / 5
    assert end > start + 1.0, f"gold went from {start:.2f} to {end:.2f}"
    assert rows[-1]["reward/score"] > rows[0]["reward/score"]
    samples = read_jsonl(run / "samples.jsonl")
    assert {s["iteration"] for s in samples} == {1, 5, 10, 15, 20}
    assert {"prompt", "response", "score", "gold", "ended"} <= set(samples[0])
    for s in samples:
        assert s["gold"] == toyworld.gold_score(s["prompt"], s["response"], s["ended"]).total
    assert json.loads((run / "config.json").read_text()) == PPOConfig(
        iterations=20, sample_every=5).to_dict()
    assert json.loads((run / "result.json").read_text())["status"] == "finished"
    assert (run / "policy" / "config.json").is_file()
    from transformers import AutoModelForCausalLM
    AutoModelForCausalLM.from_pretrained(run / "policy")  # loads back


# ---------------------------------------------------------------------------------------
# Reproducibility, stop flag, NaN guard
# ---------------------------------------------------------------------------------------
def _curve(history):
    return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in history]


def test_same_seed_same_curve():
    a = train_ppo(PPOConfig(**TINY, seed=1))
    b = train_ppo(PPOConfig(**TINY, seed=1))
    c = train_ppo(PPOConfig(**TINY, seed=2))
    assert _curve(a.history) == _curve(b.history)
    assert _curve(a.history) != _curve(c.history)


def test_stop_flag(tmp_path):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 3  # 1 critic pre-training step, then 2 iterations

    result = train_ppo(PPOConfig(**{**TINY, "iterations": 10, "save_final": True}),
                       run_dir=tmp_path, should_stop=should_stop)
    assert result.status == "stopped" and result.iterations == 2
    assert "before iteration 3" in result.reason
    assert len(read_jsonl(tmp_path / "metrics.jsonl")) == 2
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "stopped"
    assert (tmp_path / "policy").is_dir()  # what was learned is saved


def test_a_run_stopped_before_its_first_iteration_saves_no_policy(tmp_path):
    result = train_ppo(PPOConfig(**{**TINY, "save_final": True}), run_dir=tmp_path,
                       should_stop=lambda: True)
    assert result.status == "stopped" and result.iterations == 0
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "stopped"
    assert not (tmp_path / "policy").exists()  # nothing learned: no checkpoint to offer


def test_nan_guard_on_reward(tmp_path):
    calls = []

    def broken_reward(prompts, responses):
        calls.append(1)
        scores = torch.tensor([float(len(r.split())) for r in responses])
        if len(calls) == 3:  # rollout 3 = iteration 2
            scores[1] = float("nan")
        return scores

    result = train_ppo(PPOConfig(**TINY, critic_init="policy"), run_dir=tmp_path,
                       reward_model=broken_reward)
    assert result.status == "nan" and result.iterations == 1
    assert "reward-model scores" in result.reason and "iteration 2" in result.reason
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["status"] == "nan" and "NaN guard" in saved["reason"]
    assert all(torch.isfinite(p).all() for p in result.policy.parameters())


def test_nan_guard_on_loss(monkeypatch, toy_policy):
    real = trainer_module.value_loss

    def poisoned(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        return loss * float("inf"), stats

    monkeypatch.setattr(trainer_module, "value_loss", poisoned)
    result = train_ppo(PPOConfig(**{**TINY, "critic_pretrain_steps": 0}))
    assert result.status == "nan" and result.iterations == 0
    assert "non-finite loss" in result.reason and "iteration 1, epoch 1, minibatch 1" in result.reason
    # the guard fires before the optimiser step: the policy is still the base model
    base, _ = toy_policy
    assert all(torch.equal(a, b) for a, b in zip(base.parameters(), result.policy.parameters()))


# ---------------------------------------------------------------------------------------
# The switches run (Lab 07 turns them on and off)
# ---------------------------------------------------------------------------------------
def test_every_switch_runs():
    cfg = PPOConfig(**{**TINY, "iterations": 2}, kl_estimator="k3", kl_target=2.0,
                    token_level_kl=False, reward_norm=False, reward_scaling=True,
                    reward_clip=None, advantage_norm=False, advantage_clip=0.5,
                    value_clip=None, entropy_coef=0.01, ptx_coef=0.5, max_grad_norm=None,
                    critic_init="policy", top_p=0.9, temperature=0.8)
    result = train_ppo(cfg)
    assert result.status == "finished"
    last = result.history[-1]
    assert "policy/ptx_loss" in last and math.isfinite(last["policy/ptx_loss"])
    assert last["objective/kl_coef"] != cfg.kl_coef  # the adaptive controller moved beta
    # objective/kl is the run's estimator: k3 is never negative (k1 can be, per response)
    assert all(row["objective/kl"] >= 0 for row in result.history)


def test_gold_oracle_and_passed_in_policy(toy_policy):
    model, tok = toy_policy
    before = [p.clone() for p in model.parameters()]
    with pytest.warns(UserWarning, match="critic_init"):  # no reward model to start from
        result = train_ppo(PPOConfig(**{**TINY, "iterations": 2}), policy=(model, tok),
                           reward_model="gold")
    assert result.status == "finished"
    # the model passed in is not modified; the trained copy is returned
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before, result.policy.parameters()))


def test_critic_starts_as_the_reward_model():
    result = train_ppo(PPOConfig(**{**TINY, "iterations": 0, "critic_pretrain_steps": 0}))
    from moss_lab.ppo.toy import toy_reward_model_dir
    from moss_lab.reward import load_reward_model

    rm, _ = load_reward_model(toy_reward_model_dir())
    for (name, a), b in zip(result.critic.named_parameters(), rm.parameters()):
        assert torch.equal(a, b), name


def test_prompt_files(tmp_path):
    from moss_lab.ppo.setup import prompt_source

    txt = tmp_path / "p.txt"
    txt.write_text("Human: hi . Assistant: \n\nHuman: tell me about cats . Assistant: \n"
                   "Human: bye . Assistant: \n")
    draw = prompt_source(PPOConfig(prompts=str(txt), batch_size=2))
    first_epoch = draw(0) + draw(1)[:1]
    assert sorted(first_epoch) == sorted(txt.read_text().split("\n")[i] for i in (0, 2, 3))
    assert draw(5) == prompt_source(PPOConfig(prompts=str(txt), batch_size=2))(5)  # deterministic
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps({"prompt": p}) for p in toyworld.sample_prompts(5)))
    assert prompt_source(PPOConfig(prompts=str(jsonl), batch_size=5))(0) != []
    with pytest.raises(ValueError, match="not found"):
        prompt_source(PPOConfig(prompts=str(tmp_path / "nope.txt")))
    # a run on the prompt file: no gold outside the toy world; checkpoints every iteration
    run = tmp_path / "run"
    result = train_ppo(PPOConfig(prompts=str(txt), iterations=2, batch_size=4, minibatch_size=4,
                                 max_new_tokens=6, critic_pretrain_steps=0, save_every=1),
                       run_dir=run)
    assert result.status == "finished" and result.run_dir == run
    rows = read_jsonl(run / "metrics.jsonl")
    assert len(rows) == 2 and "reward/gold" not in rows[0]
    assert "gold" not in read_jsonl(run / "samples.jsonl")[0]
    assert (run / "checkpoints" / "iter-0001" / "config.json").is_file()
    assert (run / "checkpoints" / "iter-0002" / "config.json").is_file()
    assert (run / "policy" / "config.json").is_file()
    assert not [p.name for p in run.rglob(".building-*")]  # every save was atomic
