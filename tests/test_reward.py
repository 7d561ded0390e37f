"""The Bradley-Terry reward model: loss and remedies against their formulas, training, I/O."""
import json
import math

import pytest
import torch

from moss_lab import preferences as prefs
from moss_lab import reward, scoring, toyworld
from moss_lab.preferences import Preference
from moss_lab.reward import RewardConfig, bradley_terry_loss


def brute_force_bt(r_c, r_r, margin=None, eps=0.0):
    """The loss with plain floats and a loop: the reference."""
    total = 0.0
    for i, (c, r) in enumerate(zip(r_c, r_r)):
        m = 0.0 if margin is None else (margin[i] if isinstance(margin, list) else margin)
        e = eps[i] if isinstance(eps, list) else eps
        d = c - r - m
        total += -(1 - e) * math.log(1 / (1 + math.exp(-d))) - e * math.log(1 / (1 + math.exp(d)))
    return total / len(r_c)


# ---------------------------------------------------------------------------------------
# the loss and its remedies
# ---------------------------------------------------------------------------------------
def test_bt_loss_matches_a_brute_force_loop():
    g = torch.Generator().manual_seed(0)
    r_c, r_r = torch.randn(9, generator=g) * 3, torch.randn(9, generator=g) * 3
    got = bradley_terry_loss(r_c, r_r).item()
    assert got == pytest.approx(brute_force_bt(r_c.tolist(), r_r.tolist()), abs=1e-6)
    # only differences matter
    assert bradley_terry_loss(r_c + 5, r_r + 5).item() == pytest.approx(got, abs=1e-6)
    # the textbook case: equal rewards give log 2
    assert bradley_terry_loss(torch.zeros(3), torch.zeros(3)).item() == pytest.approx(math.log(2))


def test_bt_loss_is_stable_for_huge_gaps():
    loss = bradley_terry_loss(torch.tensor([-1000.0, 1000.0]), torch.tensor([0.0, 0.0]))
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(500.0)


def test_label_smoothing_formula():
    r_c, r_r = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([0.5, 1.0, 0.3])
    for eps in (0.1, 0.5):
        got = bradley_terry_loss(r_c, r_r, label_smoothing=eps).item()
        assert got == pytest.approx(brute_force_bt(r_c.tolist(), r_r.tolist(), eps=eps), abs=1e-6)
    # eps = 0.5 makes the loss symmetric: it no longer cares which one was chosen
    assert bradley_terry_loss(r_c, r_r, label_smoothing=0.5).item() == pytest.approx(
        bradley_terry_loss(r_r, r_c, label_smoothing=0.5).item(), abs=1e-6)
    # per-pair smoothing
    eps = [0.0, 0.2, 0.5]
    got = bradley_terry_loss(r_c, r_r, label_smoothing=torch.tensor(eps)).item()
    assert got == pytest.approx(brute_force_bt(r_c.tolist(), r_r.tolist(), eps=eps), abs=1e-6)


def test_margin_formula():
    r_c, r_r = torch.tensor([2.0, -1.0, 0.3]), torch.tensor([0.5, 1.0, 0.3])
    got = bradley_terry_loss(r_c, r_r, margin=1.0).item()
    assert got == pytest.approx(brute_force_bt(r_c.tolist(), r_r.tolist(), margin=1.0), abs=1e-6)
    # a margin shifts the gap: it equals the plain loss with r_c lowered by m
    assert got == pytest.approx(bradley_terry_loss(r_c - 1.0, r_r).item(), abs=1e-6)
    m = [0.0, 0.5, 2.0]
    got = bradley_terry_loss(r_c, r_r, margin=torch.tensor(m), label_smoothing=0.1).item()
    assert got == pytest.approx(brute_force_bt(r_c.tolist(), r_r.tolist(), margin=m, eps=0.1), abs=1e-6)


def test_gradient_matches_the_analytic_formula_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    r_c = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    r_r = torch.randn(6, generator=g, dtype=torch.float64, requires_grad=True)
    m, eps = torch.rand(6, generator=g, dtype=torch.float64), 0.1
    bradley_terry_loss(r_c, r_r, m, eps).backward()
    d = (r_c - r_r - m).detach()
    # dL/dr_c = (-(1-eps) sigma(-d) + eps sigma(d)) / n ; dL/dr_r is its negative
    expected = (-(1 - eps) * torch.sigmoid(-d) + eps * torch.sigmoid(d)) / 6
    torch.testing.assert_close(r_c.grad, expected)
    torch.testing.assert_close(r_r.grad, -expected)
    assert torch.autograd.gradcheck(lambda a, b: bradley_terry_loss(a, b, m, eps),
                                    (r_c.detach().requires_grad_(), r_r.detach().requires_grad_()))


PROMPT = toyworld.format_prompt("tell me about cats .")


def make_pairs(n=6):
    good = ["cats purr when they are happy .", "happy to help . cats hunt small mice .",
            "cats sleep most of the day .", "sure ! cats land on their feet .",
            "cats clean their fur often .", "glad you asked . cats purr when they are happy ."]
    bad = ["go away .", "well , ok .", "bees can sting .", "i do not care .", "so , yes .",
           "what a dumb thing to ask ."]
    return [Preference(PROMPT, good[i % 6], bad[i % 6]) for i in range(n)]


def test_per_pair_margins_and_smoothing_follow_the_config():
    pairs = make_pairs(3)
    pairs[1].margin = 2.0
    pairs[2].tie = True
    cfg = RewardConfig(margin=0.5, adaptive_margin=0.25, label_smoothing=0.1)
    strength = torch.tensor([4.0, -1.0, 1.0])
    torch.testing.assert_close(reward.pair_margins(pairs, cfg, strength),
                               torch.tensor([0.5 + 1.0, 0.5 + 2.0, 0.5 + 0.25]))
    cfg_no_data = RewardConfig(margin=0.5, margin_from_data=False)
    torch.testing.assert_close(reward.pair_margins(pairs, cfg_no_data), torch.full((3,), 0.5))
    torch.testing.assert_close(reward.pair_smoothing(pairs, cfg), torch.tensor([0.1, 0.1, 0.5]))


def test_flip_weakest_flips_exactly_the_lowest_strength_pairs():
    pairs = make_pairs(6)
    pairs[0].tie = True
    pairs[4].chosen_ended = False
    strength = torch.tensor([-9.0, 3.0, -2.0, 0.5, -1.0, 2.0])
    flipped, idx = reward.flip_weakest(pairs, strength, 0.4)  # 40% of the 5 labelled = 2
    assert sorted(idx) == [2, 4]  # the tie (strength -9) is never flipped
    for i, (old, new) in enumerate(zip(pairs, flipped)):
        if i in idx:
            assert (new.chosen, new.rejected) == (old.rejected, old.chosen)
            assert (new.chosen_ended, new.rejected_ended) == (old.rejected_ended, old.chosen_ended)
            assert prefs.gold_difference(new) == pytest.approx(-prefs.gold_difference(old))
        else:
            assert new == old
    assert reward.flip_weakest(pairs, strength, 0.0) == (pairs, [])


@pytest.fixture(scope="module")
def rm():
    model, tokenizer = reward.init_reward_model("toy", seed=0)
    return model.eval(), tokenizer


def test_reward_model_uses_the_fused_gelu_with_the_base_models_outputs(rm):
    """init_reward_model swaps GPT-2's Python gelu_new for the fused tanh GELU (speed):
    the same function, so the body computes what the base model computes."""
    from transformers import AutoModelForSequenceClassification

    from moss_lab.models import build_toy_model

    model, tokenizer = rm
    assert model.config.activation_function == "gelu_pytorch_tanh"
    torch.manual_seed(0)
    slow = AutoModelForSequenceClassification.from_pretrained(build_toy_model("xs"), num_labels=1).eval()
    assert slow.config.activation_function == "gelu_new"
    pairs = make_pairs(6)
    batch = scoring.reward_inputs(tokenizer, [p.prompt for p in pairs], [p.chosen for p in pairs])
    with torch.no_grad():
        fast_h = model.base_model(**batch).last_hidden_state
        slow_h = slow.base_model(**batch).last_hidden_state
    assert torch.allclose(fast_h, slow_h, atol=1e-5)
    assert fast_h.abs().max() > 0.1  # not a degenerate comparison


def test_pair_loss_scores_the_same_way_as_scoring(rm):
    """Training reads prompt + response + <eos> exactly like moss_lab.scoring (used by PPO)."""
    model, tokenizer = rm
    pairs = make_pairs(6)
    r_c = scoring.score(model, tokenizer, [p.prompt for p in pairs], [p.chosen for p in pairs])
    r_r = scoring.score(model, tokenizer, [p.prompt for p in pairs], [p.rejected for p in pairs])
    with torch.no_grad():
        loss, stats = reward.pair_loss(model, tokenizer, pairs, RewardConfig())
    assert loss.item() == pytest.approx(bradley_terry_loss(r_c, r_r).item(), abs=1e-6)
    assert stats["train/accuracy"] == pytest.approx((r_c > r_r).float().mean().item())
    assert stats["train/margin"] == pytest.approx((r_c - r_r).mean().item(), abs=1e-6)


def test_each_config_remedy_changes_the_batch_loss_as_its_formula_says(rm):
    model, tokenizer = rm
    pairs = make_pairs(6)
    pairs[0].margin = 1.5
    pairs[5].tie = True
    prompts = [p.prompt for p in pairs]
    r_c = scoring.score(model, tokenizer, prompts, [p.chosen for p in pairs])
    r_r = scoring.score(model, tokenizer, prompts, [p.rejected for p in pairs])
    c, r = r_c.tolist(), r_r.tolist()
    eps_tie = [0.0] * 5 + [0.5]

    def loss_of(**kw):
        with torch.no_grad():
            return reward.pair_loss(model, tokenizer, pairs, RewardConfig(**kw))[0].item()

    m_data = [1.5, 0, 0, 0, 0, 0]
    assert loss_of() == pytest.approx(brute_force_bt(c, r, margin=m_data, eps=eps_tie), abs=1e-5)
    assert loss_of(margin_from_data=False) == pytest.approx(brute_force_bt(c, r, eps=eps_tie), abs=1e-5)
    assert loss_of(margin=0.7) == pytest.approx(
        brute_force_bt(c, r, margin=[x + 0.7 for x in m_data], eps=eps_tie), abs=1e-5)
    assert loss_of(label_smoothing=0.2) == pytest.approx(
        brute_force_bt(c, r, margin=m_data, eps=[0.2] * 5 + [0.5]), abs=1e-5)
    base = brute_force_bt(c, r, margin=m_data, eps=eps_tie)
    center = sum((a + b) ** 2 for a, b in zip(c, r)) / 6
    assert loss_of(center_coef=0.3) == pytest.approx(base + 0.3 * center, abs=1e-5)


def test_eager_attention_scores_like_the_default():
    """attn_implementation="eager" is a speed option only: same weights, same scores."""
    default, tokenizer = reward.init_reward_model("toy", seed=0)
    eager, _ = reward.init_reward_model("toy", seed=0, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    assert default.config._attn_implementation != "eager"
    pairs = make_pairs(8)
    prompts, responses = [p.prompt for p in pairs], [p.chosen for p in pairs]
    torch.testing.assert_close(scoring.score(eager, tokenizer, prompts, responses),
                               scoring.score(default, tokenizer, prompts, responses),
                               rtol=0, atol=1e-5)


def test_lm_term_is_the_base_models_next_token_loss_on_chosen(rm):
    """With lm_coef the loss adds the causal LM loss of the (tied-head) base model."""
    from transformers import AutoModelForCausalLM

    from moss_lab.models import build_toy_model

    model, tokenizer = rm
    pairs = make_pairs(4)
    with torch.no_grad():
        plain = reward.pair_loss(model, tokenizer, pairs, RewardConfig())[0].item()
        with_lm = reward.pair_loss(model, tokenizer, pairs, RewardConfig(lm_coef=0.5))[0].item()
    lm = AutoModelForCausalLM.from_pretrained(build_toy_model("xs")).eval()
    batch = scoring.reward_inputs(tokenizer, [p.prompt for p in pairs], [p.chosen for p in pairs])
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        ref = lm(**batch, labels=labels).loss.item()
    assert with_lm == pytest.approx(plain + 0.5 * ref, abs=1e-5)


# ---------------------------------------------------------------------------------------
# evaluation
# ---------------------------------------------------------------------------------------
def test_evaluate_counts_accuracies_like_a_loop(rm, monkeypatch):
    model, tokenizer = rm
    pairs = make_pairs(6)
    pairs[3] = Preference(PROMPT, "go away .", "i do not care .")  # a gold tie: skipped for acc_gold
    pairs[4].tie = True                                            # a label tie: skipped for acc_labels
    pairs[5] = Preference(pairs[5].prompt, pairs[5].rejected, pairs[5].chosen)  # label against gold
    r_c = torch.tensor([1.0, -1.0, 2.0, 0.0, 3.0, 1.0])
    r_r = torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    monkeypatch.setattr(reward, "pair_scores", lambda m, t, p: (r_c, r_r))
    out = reward.evaluate_reward_model(model, tokenizer, pairs)
    labelled = [0, 1, 2, 3, 5]
    assert out["acc_labels"] == pytest.approx(sum(r_c[i] > r_r[i] for i in labelled).item() / 5)
    gold = [prefs.gold_difference(p) for p in pairs]
    kept = [i for i in range(6) if abs(gold[i]) > 1e-9]
    assert 3 not in kept and out["n_gold"] == len(kept)
    agree = sum(((r_c[i] - r_r[i]) > 0).item() == (gold[i] > 0) for i in kept)
    assert out["acc_gold"] == pytest.approx(agree / len(kept))
    assert out["margin"] == pytest.approx((r_c - r_r).mean().item())
    both = torch.cat([r_c, r_r])
    assert out["reward_mean"] == pytest.approx(both.mean().item())
    assert out["reward_std"] == pytest.approx(both.std().item())


# ---------------------------------------------------------------------------------------
# training, run folder, save/load
# ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy_data(toy_policy):
    model, tokenizer = toy_policy
    train = prefs.toy_pairs(model, tokenizer, 600, toyworld.SimulatedAnnotator(0.3, seed=0), seed=0)
    held_out = prefs.toy_pairs(model, tokenizer, 200, toyworld.SimulatedAnnotator(0.3, seed=1), seed=99)
    return train, held_out


@pytest.fixture(scope="module")
def trained(toy_data, tmp_path_factory):
    train, held_out = toy_data
    run_dir = tmp_path_factory.mktemp("rm-run")
    seen = []
    cfg = RewardConfig(epochs=2, batch_size=64, lr=2e-3, flip_fraction=0.05, adaptive_margin=0.1)
    model, tokenizer, final = reward.train_reward_model(
        train, cfg, run_dir=run_dir, on_metrics=seen.append, eval_pairs=held_out)
    return model, tokenizer, final, run_dir, seen, cfg


def test_short_training_beats_chance_on_held_out_gold(trained):
    _, _, final, _, _, _ = trained
    # chance is 0.5; this run reaches ~0.71 on 197 gold-ordered pairs (3 sigma above 0.6)
    assert final["acc_gold"] > 0.6 and final["acc_labels"] > 0.6
    assert final["n_eval"] == 200 and final["n_train"] == 600
    assert final["flipped"] == 30  # 5% of 600, flipped when epoch 1 started


def test_run_folder_metrics_config_and_callback(trained):
    _, _, final, run_dir, seen, cfg = trained
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert records == seen  # the callback saw exactly what the file holds
    steps = [r for r in records if "loss" in r]
    evals = [r for r in records if "eval/acc_gold" in r]
    assert [r["step"] for r in steps] == list(range(1, final["steps"] + 1))
    assert final["steps"] == 2 * math.ceil(600 / 64)
    for r in steps:
        assert {"step", "epoch", "lr", "loss", "train/accuracy", "train/margin", "reward/mean",
                "reward/std", "time/step_s"} <= set(r)
        assert all(math.isfinite(v) for v in r.values())
    assert len(evals) == 2 and evals[-1]["eval/acc_gold"] == pytest.approx(final["acc_gold"])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["epochs"] == cfg.epochs and config["n_train"] == 600
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "finished"
    assert {k: v for k, v in result.items() if k != "status"} == {
        k: v for k, v in final.items() if k != "run_dir"}


def test_save_load_round_trip_gives_identical_scores(trained, toy_data):
    model, tokenizer, _, run_dir, _, _ = trained
    _, held_out = toy_data
    loaded, tok2 = reward.load_reward_model(run_dir)
    prompts, responses = [p.prompt for p in held_out], [p.chosen for p in held_out]
    torch.testing.assert_close(scoring.score(loaded, tok2, prompts, responses),
                               scoring.score(model, tokenizer, prompts, responses), rtol=0, atol=0)
    assert reward.load_reward_model(run_dir / reward.MODEL_SUBDIR)[0].config.num_labels == 1


def test_training_keeps_frozen_embeddings_and_moves_the_rest(trained):
    from moss_lab.models import build_toy_model
    from transformers import AutoModelForCausalLM

    model = trained[0]
    base = AutoModelForCausalLM.from_pretrained(build_toy_model("xs"))
    torch.testing.assert_close(model.transformer.wte.weight, base.transformer.wte.weight)
    torch.testing.assert_close(model.transformer.wpe.weight, base.transformer.wpe.weight)
    moved = (model.transformer.h[0].attn.c_attn.weight - base.transformer.h[0].attn.c_attn.weight)
    assert moved.abs().max() > 1e-3


def test_should_stop_ends_training_early(toy_data, tmp_path):
    train, held_out = toy_data
    calls = []

    def stop():
        calls.append(1)
        return len(calls) > 3
    _, _, final = reward.train_reward_model(train[:200], RewardConfig(epochs=3),
                                            run_dir=tmp_path, should_stop=stop,
                                            eval_pairs=held_out[:50])
    assert final["stopped"] and final["steps"] == 3
    assert (tmp_path / "model" / "model.safetensors").is_file()


def test_out_of_memory_in_training_says_what_to_change(toy_data, tmp_path, monkeypatch):
    from moss_lab.memory import NotEnoughMemory

    train, held_out = toy_data
    real, calls = reward.pair_loss, []

    def pair_loss(*args, **kwargs):  # the third step runs out of GPU memory
        calls.append(1)
        if len(calls) == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(reward, "pair_loss", pair_loss)
    with pytest.raises(NotEnoughMemory, match=r"^CUDA out of memory training a reward model "
                       r"on 'toy': lower batch_size \(now 64\), or start from a smaller"):
        reward.train_reward_model(train[:200], RewardConfig(epochs=1), run_dir=tmp_path,
                                  eval_pairs=held_out[:50])
    assert not (tmp_path / "model").exists()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    monkeypatch.setattr(reward, "pair_loss", lambda *a, **k: (_ for _ in ()).throw(
        RuntimeError("mat1 and mat2 shapes cannot be multiplied")))
    with pytest.raises(RuntimeError, match="shapes"):  # not taken for a lack of memory
        reward.train_reward_model(train[:200], RewardConfig(epochs=1))


def test_train_rejects_invalid_pairs():
    with pytest.raises(prefs.PreferenceError, match="same text"):
        reward.train_reward_model([Preference(PROMPT, "a .", "a .")])


def _old_lr_factor(step, total, config):
    """The schedule before the warm-up was scaled to the run (warmup_steps, always)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def test_warmup_is_scaled_for_a_tiny_run_and_unchanged_for_the_default_run():
    from moss_lab.ppo import toy

    config = RewardConfig()
    # the default toy run (the app's Reward tab): 4000 pairs, 10% held out, batch 64,
    # 7 epochs -> 57 steps an epoch, 399 steps, the full 20-step warm-up
    n_train, n_eval = reward.split_sizes(4000, config.eval_fraction)
    total = math.ceil(n_train / config.batch_size) * config.epochs
    assert (n_train, n_eval, total) == (3600, 400, 399)
    assert reward.warmup_for(total, config) == 20
    assert all(reward._lr_factor(s, total, config) == _old_lr_factor(s, total, config)
               for s in range(total))
    # PPO's toy reward model: 9000 pairs (held-out pairs apart), 3 epochs -> 423 steps,
    # the full warm-up, then a cosine decay to 0
    toy_config = toy.toy_rm_config()
    total = math.ceil(toy.TOY_RM_PAIRS / toy_config.batch_size) * toy_config.epochs
    assert total == 423 and reward.warmup_for(total, toy_config) == 20
    assert reward._lr_factor(total - 1, total, toy_config) < 1e-4
    # Lab 03's SMALL config on its 800 pairs: 3 x 13 steps, warm-up 5, unchanged too
    small = RewardConfig(epochs=3, batch_size=64, lr=3e-3, warmup_steps=5)
    assert reward.warmup_for(13 * 3, small) == 5
    # 25 labels: 23 training pairs, one step an epoch, 7 steps: the warm-up (20 steps)
    # was longer than the run and lr never reached the form's value; now it does at once
    n_train, n_eval = reward.split_sizes(25, config.eval_fraction)
    total = math.ceil(n_train / config.batch_size) * config.epochs
    assert (n_train, n_eval, total) == (23, 2, 7)
    assert reward.warmup_for(total, config) == 1
    assert max(reward._lr_factor(s, total, config) for s in range(total)) == 1.0
    assert max(_old_lr_factor(s, total, config) for s in range(total)) < 0.4


def test_reward_config_refuses_out_of_range_values():
    with pytest.raises(ValueError, match=r"epochs must be in \[1, 1000\], got 1000000000"):
        RewardConfig(epochs=10**9)
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 1\], got nan"):
        RewardConfig(lr=float("nan"))
