"""Real models on a GPU, checked on the CPU (issue 11): bf16 autocast, LoRA, gradient
checkpointing, the memory estimate, the gpu-small preset's messages, running out of GPU
memory, and the device list. Tiny random models built here; every run takes seconds."""
import json
import types

import pytest
import torch
from transformers import (AutoModelForCausalLM, GPT2Config, GPT2ForSequenceClassification,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM)

from moss_lab import device as device_module
from moss_lab.memory import ModelShape, estimate_ppo_memory, lora_params, shape_of
from moss_lab.ppo import PPOConfig, train_ppo
from moss_lab.ppo import trainer as trainer_module
from moss_lab.ppo.rollout import policy_forward
from moss_lab.ppo.setup import add_lora, enable_checkpointing, merge_lora
from moss_lab.tokenizer import build_toy_tokenizer

# A 2-iteration default (fp32) run of the model below, recorded before precision, LoRA and
# checkpointing existed: an fp32 run must stay exactly what it was.
BEFORE = [{"policy/loss": -0.023861991241574287, "val/value_loss": 0.019285292364656925,
           "policy/grad_norm": 2.182811141014099, "objective/entropy": 5.469708442687988,
           "response/perplexity": 236.35961617978944},
          {"policy/loss": -0.012824674136936665, "val/value_loss": 0.0041873223963193595,
           "policy/grad_norm": 2.218768060207367, "objective/entropy": 5.469514846801758,
           "response/perplexity": 239.61945644450597}]
SHORT = dict(iterations=2, batch_size=8, minibatch_size=4, max_new_tokens=8,
             critic_init="policy", critic_pretrain_steps=1, device="cpu")


@pytest.fixture(scope="module")
def tok():
    return build_toy_tokenizer()


def gpt2_config(tok, **extra):
    return GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=64,
                      resid_pdrop=0, embd_pdrop=0, attn_pdrop=0, pad_token_id=tok.pad_token_id,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **extra)


def tiny_policy(tok):
    torch.manual_seed(0)
    return GPT2LMHeadModel(gpt2_config(tok)).eval()


@pytest.fixture(scope="module")
def reward_folder(tok, tmp_path_factory):
    """A tiny reward model saved like moss-lab train-rm saves one."""
    folder = tmp_path_factory.mktemp("rm")
    torch.manual_seed(1)
    GPT2ForSequenceClassification(gpt2_config(tok, num_labels=1)).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def capture_models(monkeypatch) -> dict:
    """The models train_ppo loads, kept for inspection."""
    seen = {}
    load = trainer_module.load_models

    def spy(*args, **kwargs):
        out = load(*args, **kwargs)
        seen.update(zip(["policy", "tokenizer", "ref", "critic", "reward", "device"], out))
        seen["trained"] = {n: p.numel() for n, p in out[0].named_parameters() if p.requires_grad}
        return out

    monkeypatch.setattr(trainer_module, "load_models", spy)
    return seen


# ---------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------
def test_fp32_run_is_unchanged(tok):
    result = train_ppo(PPOConfig(**SHORT, save_final=False), policy=(tiny_policy(tok), tok),
                       reward_model="gold")
    assert PPOConfig().precision == "auto" and result.status == "finished"
    for row, before in zip(result.history, BEFORE):
        # rel 1e-5: another CPU's float kernels round differently (1e-6 seen between two
        # Xeons); a changed fp32 path moves these figures by far more
        assert {k: row[k] for k in before} == pytest.approx(before, rel=1e-5)


def test_bf16_on_cpu(tok, reward_folder, monkeypatch):
    seen = capture_models(monkeypatch)
    dtypes = []
    for name in ("policy_loss", "value_loss"):
        real = getattr(trainer_module, name)

        def spy(new, *args, real=real, **kwargs):
            loss, stats = real(new, *args, **kwargs)
            dtypes.append((new.dtype, loss.dtype))
            return loss, stats

        monkeypatch.setattr(trainer_module, name, spy)
    config = PPOConfig(**{**SHORT, "critic_init": "reward"}, precision="bf16", save_final=False,
                       reward=str(reward_folder))
    result = train_ppo(config, policy=(tiny_policy(tok), tok))
    assert result.status == "finished", result.reason
    assert dtypes and set(dtypes) == {(torch.float32, torch.float32)}  # log-probs, values, losses
    assert {p.dtype for p in seen["ref"].parameters()} == {torch.bfloat16}
    assert {p.dtype for p in seen["reward"].model.parameters()} == {torch.bfloat16}
    for trained in ("policy", "critic"):  # fp32 master weights
        assert {p.dtype for p in seen[trained].parameters()} == {torch.float32}
    assert device_module.compute_dtype("auto", "cpu") == torch.float32


# ---------------------------------------------------------------------------------------
# LoRA and gradient checkpointing
# ---------------------------------------------------------------------------------------
def test_lora_trains_adapters_and_saves_a_plain_model(tok, tmp_path, monkeypatch):
    seen = capture_models(monkeypatch)
    base = tiny_policy(tok)
    config = PPOConfig(**SHORT, lora_rank=4, lr=1e-2, save_every=2)
    result = train_ppo(config, run_dir=tmp_path, policy=(base, tok), reward_model="gold")
    assert result.status == "finished", result.reason
    trained = seen["trained"]  # at the start of the run (the end merges the adapters in)
    assert trained and all("lora_" in n for n in trained)
    assert sum(trained.values()) == lora_params(base, 4)
    for folder in (tmp_path / "policy", tmp_path / "checkpoints" / "iter-0002"):
        saved = AutoModelForCausalLM.from_pretrained(folder)
        state, before = saved.state_dict(), base.state_dict()
        assert set(state) == set(before)  # no adapter names left: a plain GPT-2
        changed = {k for k in state if not torch.equal(state[k], before[k])}
        assert changed and all("c_attn.weight" in k for k in changed)  # only LoRA's layers


def test_merge_is_w_plus_scaled_ba(tok):
    """merge_lora folds W + (alpha / r) B A into each LoRA layer (GPT-2's Conv1D stores W
    transposed) and gives the same outputs as the model with adapters."""
    model = add_lora(tiny_policy(tok), PPOConfig(lora_rank=4, lora_alpha=8.0))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)  # B starts at 0: make the adapters do something
    merged = merge_lora(model)
    base = tiny_policy(tok).state_dict()
    assert set(merged.state_dict()) == set(base)
    for i in range(2):
        layer = model.transformer.h[i].attn.c_attn
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        key = f"transformer.h.{i}.attn.c_attn.weight"
        expected = base[key] + (8.0 / 4) * (b @ a).T
        assert torch.allclose(merged.state_dict()[key], expected, atol=1e-6)
    ids = torch.randint(0, len(tok), (2, 9))
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, model(input_ids=ids).logits,
                              atol=1e-5)


def tiny_llama(tok):
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
        pad_token_id=tok.pad_token_id)).eval()


@pytest.mark.parametrize("build", [tiny_policy, tiny_llama])
def test_gradient_checkpointing_same_loss_and_gradients(tok, build):
    ids = torch.randint(3, len(tok), (4, 20))
    mask = torch.ones_like(ids)
    mask[0, :6] = 0  # left padding, as in a rollout
    inputs = {"input_ids": ids, "attention_mask": mask,
              "position_ids": (mask.cumsum(1) - 1).clamp(min=0)}
    out = []
    for checkpointing in (False, True):
        model = build(tok)
        if checkpointing:
            enable_checkpointing(model)
        logp, _ = policy_forward(model, inputs, ids[:, 12:], with_entropy=False)
        loss = -logp.mean()
        loss.backward()
        out.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (l0, g0), (l1, g1) = out
    assert torch.allclose(l0, l1, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g0, g1))


# ---------------------------------------------------------------------------------------
# The memory estimate
# ---------------------------------------------------------------------------------------
def saved_activation_bytes(model, fn) -> int:
    """Bytes of the tensors autograd keeps for the backward (weights excluded)."""
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in weights:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def test_memory_estimate_weights_and_adam_are_exact(tok):
    policy = tiny_policy(tok)
    shape = shape_of(policy.config)
    assert shape.params == policy.num_parameters() and shape.layers == 2 and shape.hidden == 32
    opt = torch.optim.Adam(policy.parameters())
    policy(input_ids=torch.randint(0, len(tok), (2, 5))).logits.sum().backward()
    opt.step()
    nbytes = lambda ts: sum(t.numel() * t.element_size() for t in ts)  # noqa: E731
    measured = {"weights": nbytes(policy.parameters()) * 2,  # + the fp32 reference copy
                "gradients": nbytes(p.grad for p in policy.parameters()),
                "adam": nbytes(s[k] for s in opt.state.values() for k in ("exp_avg", "exp_avg_sq"))}
    est = estimate_ppo_memory(PPOConfig(precision="fp32"), shape, ModelShape(0), None, 16)
    for part, value in measured.items():
        assert est[part] * 2**30 == pytest.approx(value, rel=1e-9), part
    bf16 = estimate_ppo_memory(PPOConfig(precision="bf16"), shape, ModelShape(0), None, 16)
    assert bf16["weights"] * 2**30 == pytest.approx(6 * shape.params)  # fp32 + bf16 reference
    lora = estimate_ppo_memory(PPOConfig(lora_rank=4), shape_of(policy.config, lora_rank=4),
                               ModelShape(0), None, 16)
    assert lora["adam"] * 2**30 == 8 * lora_params(policy, 4) < est["adam"] * 2**30


@pytest.mark.parametrize("checkpointing", [False, True])
def test_memory_estimate_activations_within_a_factor(tok, checkpointing):
    model = tiny_llama(tok)
    if checkpointing:
        enable_checkpointing(model)
    m, prompt, new = 8, 16, 32
    ids = torch.randint(3, len(tok), (m, prompt + new))
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    measured = saved_activation_bytes(model, lambda: policy_forward(
        model, inputs, ids[:, prompt:], with_entropy=False)[0].sum())
    config = PPOConfig(precision="fp32", minibatch_size=m, batch_size=m, max_new_tokens=new,
                       gradient_checkpointing=checkpointing)
    est = estimate_ppo_memory(config, shape_of(model.config), ModelShape(0), None, prompt)
    update = est["update"] * 2**30  # the policy's activations and logits (no critic here)
    if checkpointing:  # the estimate also holds the block being recomputed
        assert measured < update < 10 * measured
    else:
        assert 0.5 < measured / update < 2


# ---------------------------------------------------------------------------------------
# Presets, missing inputs, devices
# ---------------------------------------------------------------------------------------
def test_gpu_small_says_what_is_missing_and_needs_a_gpu(capsys, monkeypatch):
    from moss_lab.cli import ppo as cli

    config = PPOConfig.preset("gpu-small")
    assert config.gradient_checkpointing and config.lora_rank == 0 and config.precision == "auto"
    missing = " ".join(config.missing_inputs())
    assert "a policy" in missing and "moss-lab train-rm" in missing and "prompts" in missing
    assert PPOConfig().missing_inputs() == []
    with pytest.raises(ValueError, match="missing a reward model"):
        PPOConfig(reward="").check_inputs()
    assert len(config.missing_inputs(given=("policy", "reward"))) == 1  # prompts
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["--preset", "gpu-small"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "--device cpu" in err and "a policy" in err
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        device_module.pick_device("cuda")


def test_available_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_module.available_devices()[0] == ("cpu", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: types.SimpleNamespace(
        name="Fake H100", total_memory=80 * 2**30))
    assert ("cuda:0 — Fake H100, 80.0 GiB", "cuda:0") in device_module.available_devices()


def test_app_memory_line_and_missing_inputs():
    pytest.importorskip("gradio")
    from moss_lab.app import tab_ppo
    from moss_lab.ppo import PRESETS

    def form(preset, policy, reward):
        c = PRESETS[preset]
        return [preset, policy, reward, "cpu", tab_ppo.switches_of(c),
                *[getattr(c, f) for f in [*tab_ppo.FORM, *tab_ppo.MORE]]]

    assert tab_ppo.memory_text(*form("toy-fast", "toy", "gold")).startswith("*memory estimate: ~")
    assert "once the policy" in tab_ppo.memory_text(*form("gpu-small", "", ""))
    with pytest.raises(Exception, match="missing a policy.*train-rm"):
        tab_ppo.launch("gpu-run", *form("gpu-small", "", ""))


# ---------------------------------------------------------------------------------------
# Out of GPU memory
# ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["update", "rollout"])
def test_out_of_memory_ends_the_run_cleanly(tok, tmp_path, monkeypatch, phase):
    calls = {"n": 0}
    name = "critic_forward" if phase == "update" else "rollout"
    real = getattr(trainer_module, name)

    def flaky(*args, **kwargs):  # the third call: after a finished iteration
        calls["n"] += 1
        if calls["n"] == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, name, flaky)
    config = PPOConfig(**{**SHORT, "critic_pretrain_steps": 0, "minibatch_size": 8,
                          "iterations": 3})
    result = train_ppo(config, run_dir=tmp_path, policy=(tiny_policy(tok), tok),
                       reward_model="gold")
    assert result.status == "oom"
    assert result.reason.startswith(f"CUDA out of memory at the {phase} of iteration")
    assert ("gradient_checkpointing" in result.reason) == (phase == "update")
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["status"] == "oom" and saved["reason"] == result.reason
    assert not (tmp_path / "policy").exists()  # no final policy after a failed step
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or "tmp" in p.name]
    assert not leftovers
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == result.iterations >= 1


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] . DefaultCPUAllocator: can't allocate "
                 "memory: you tried to allocate 8589934592 bytes. Error code 12")])
def test_out_of_memory_while_loading_says_what_to_change(tok, tmp_path, monkeypatch, capsys,
                                                         error):
    from moss_lab.cli import main
    from moss_lab.memory import NotEnoughMemory

    def too_big(*args, **kwargs):
        raise error

    monkeypatch.setattr(trainer_module, "load_models", too_big)
    config = PPOConfig(**SHORT, precision="fp32", reward="gold")
    with pytest.raises(NotEnoughMemory) as caught:
        train_ppo(config, run_dir=tmp_path, policy=(tiny_policy(tok), tok), reward_model="gold")
    kind = "CUDA" if isinstance(error, torch.cuda.OutOfMemoryError) else "CPU"
    message = str(caught.value)
    assert message.startswith(f"{kind} out of memory while loading the models (policy, "
                              "reference, critic) onto cpu, before the first iteration")
    assert "memory estimate: ~" in message and "Try precision bf16, " in message
    assert caught.value.__cause__ is error
    assert not (tmp_path / "policy").exists()
    # other errors are not taken for a lack of memory
    monkeypatch.setattr(trainer_module, "load_models",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("shape mismatch")))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        train_ppo(config, run_dir=tmp_path, policy=(tiny_policy(tok), tok), reward_model="gold")
    # the command line prints the message, not a traceback
    monkeypatch.setattr(trainer_module, "load_models", too_big)
    monkeypatch.setenv("MOSS_LAB_HOME", str(tmp_path / "home"))
    assert main(["ppo", "--preset", "toy-fast", "--iterations", "1", "--reward", "gold",
                 "--run-dir", str(tmp_path / "cli-run")]) == 2
    printed = capsys.readouterr().err
    assert "moss-lab ppo: error: " in printed and "out of memory while loading" in printed
    assert "Traceback" not in printed
