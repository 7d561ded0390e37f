"""Cross-checks with trl 1.16's RewardTrainer: same loss on the same batch; our data trains there."""
import pytest
import torch

from moss_lab import preferences as prefs
from moss_lab import reward, toyworld
from moss_lab.preferences import Preference

trl = pytest.importorskip("trl")

PROMPT = toyworld.format_prompt("tell me about bees .")
PAIRS = [Preference(PROMPT, "bees make sweet honey .", "go away ."),
         Preference(PROMPT, "happy to help . bees live in a hive . bees can sting .", "well , ok ."),
         Preference(toyworld.format_prompt("can you explain tea ?"), "tea is made from leaves .",
                    "tea is made from leaves . tea is made from leaves .", margin=1.25),
         Preference(PROMPT, "i do not care .", "bees help flowers grow . i hope this helps .",
                    margin=-0.5)]


def cpu_args(tmp_path, **kw):
    """trl settings for a tiny model on a CPU (see GUIDE.md)."""
    return trl.RewardConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False,
                            save_strategy="no", logging_steps=1,
                            learning_rate=1e-3, seed=0, **kw)


@pytest.fixture(scope="module")
def rm():
    model, tokenizer = reward.init_reward_model("toy", seed=0)
    return model.eval(), tokenizer


@pytest.mark.parametrize("with_margin", [False, True])
def test_our_loss_equals_trl_compute_loss_on_the_same_batch(rm, tmp_path, with_margin):
    model, tokenizer = rm
    ds = prefs.to_dataset(PAIRS, include_margin=with_margin)
    trainer = trl.RewardTrainer(model=model, args=cpu_args(tmp_path), train_dataset=ds,
                                processing_class=tokenizer)
    model.eval()
    # trl tokenizes prompt + chosen + "<eos>" to exactly what our scoring feeds the model
    for row, p in zip(trainer.train_dataset, PAIRS):
        assert row["chosen_ids"] == tokenizer(p.prompt + p.chosen).input_ids + [tokenizer.eos_token_id]
        assert row["rejected_ids"] == tokenizer(p.prompt + p.rejected).input_ids + [tokenizer.eos_token_id]
    inputs = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
    with torch.no_grad():
        trl_loss = trainer.compute_loss(model, dict(inputs)).item()
        # 1) our loss on trl's own rewards (right-padded batch, chosen then rejected)
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        r_c, r_r = logits.squeeze(-1).chunk(2)
        margin = inputs["margin"] if with_margin else None
        ours_same_rewards = reward.bradley_terry_loss(r_c, r_r, margin).item()
        # 2) our whole training path: left padding, position ids, margins from the records
        cfg = reward.RewardConfig(margin_from_data=with_margin)
        ours_pipeline = reward.pair_loss(model, tokenizer, PAIRS, cfg)[0].item()
    assert abs(ours_same_rewards - trl_loss) <= 1e-6
    assert abs(ours_pipeline - trl_loss) <= 1e-6
    assert trl_loss > 0.1  # a real loss, not a degenerate zero


def test_trl_reward_trainer_trains_on_our_exported_dataset(toy_policy, tmp_path):
    """The JSONL -> Dataset export is trl-ready: RewardTrainer trains on it as is."""
    policy, policy_tok = toy_policy
    pairs = prefs.toy_pairs(policy, policy_tok, 96, toyworld.SimulatedAnnotator(0.0, seed=0),
                            seed=5, max_new_tokens=24)
    path = prefs.write_jsonl(pairs, tmp_path / "pairs.jsonl")
    ds = prefs.to_dataset(prefs.read_jsonl(path))
    model, tokenizer = reward.init_reward_model("toy", seed=0)
    before = reward.evaluate_reward_model(model, tokenizer, pairs)["loss"]
    trainer = trl.RewardTrainer(model=model, processing_class=tokenizer, train_dataset=ds,
                                args=cpu_args(tmp_path, max_steps=12, per_device_train_batch_size=16,
                                              lr_scheduler_type="constant"))
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 12 and all(torch.isfinite(torch.tensor(losses)))
    after = reward.evaluate_reward_model(model, tokenizer, pairs)["loss"]
    assert after < before - 0.05  # it learned from our labels
