"""PEFT LoRA units, padding-aware and token-normalized magnitudes, and the bad inputs."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from reference import InputRecorder, linear_out, magnitude, reference_keep
from tiny_models import build, make_batch
from torch import nn

import migu
from migu.core.magnitude import output_magnitude
from migu.core.mask import keep_mask, num_masked


def _lora_llama(adapters=("default",)):
    model = build("llama")
    cfg = LoraConfig(
        r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )  # random B, so A's gradient is not zero at step one
    model = get_peft_model(model, cfg, adapter_name=adapters[0])
    for name in adapters[1:]:
        model.add_adapter(name, cfg)
    return model


def test_lora_a_ranked_by_own_output_b_by_combined_output():
    model = _lora_llama()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.5), optimizer=opt)
    names = [u.name for u in handle.units]
    assert len(names) == 2 * 2 * 2  # 2 layers x (q, v) x (A, B)
    assert all(".lora_A.default" in n or ".lora_B.default" in n for n in names)
    layers = {
        n: m for n, m in model.named_modules() if n.endswith(("q_proj", "v_proj")) and hasattr(m, "lora_A")
    }
    recorder = InputRecorder(layers)
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    w0 = {
        n: (
            m.lora_A["default"].weight.detach().clone(),
            m.lora_B["default"].weight.detach().clone(),
            m.base_layer.weight.detach().clone(),
        )
        for n, m in layers.items()
    }
    model(**make_batch("llama")).loss.backward()
    opt.step()
    recorder.remove()
    for name, layer in layers.items():
        a0, b0, base = w0[name]
        (x,) = recorder.inputs[name]
        a_out = linear_out(x, a0, None)  # (B, T, r)
        combined = linear_out(x, base, None) + layer.scaling["default"] * linear_out(
            a_out, b0, None
        )  # (B, T, d_out)
        keep_a = reference_keep(magnitude([a_out]), 0.5)
        keep_b = reference_keep(magnitude([combined]), 0.5)
        assert torch.equal(handle.masks[f"{name}.lora_A.default"], keep_a)
        assert torch.equal(handle.masks[f"{name}.lora_B.default"], keep_b)
        a1, b1 = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
        assert torch.equal(a1[~keep_a], a0[~keep_a]) and (a1[keep_a] != a0[keep_a]).any(1).all()
        assert torch.equal(b1[~keep_b], b0[~keep_b]) and (b1[keep_b] != b0[keep_b]).any(1).all()
    for n, p in model.named_parameters():
        if not p.requires_grad:
            assert torch.equal(p, frozen[n]), n
    handle.remove()


def test_lora_frozen_adapter_is_not_a_unit():
    """IncLoRA: earlier adapters are frozen; only the trainable one is masked."""
    model = _lora_llama(adapters=("task0", "task1"))
    for n, p in model.named_parameters():
        p.requires_grad = ".task1." in n
    handle = migu.attach(model, migu.MiguConfig(0.7))
    assert handle.units and all(".task1" in u.name for u in handle.units)
    handle.remove()


def test_padding_is_ignored_when_asked(family):
    model = build(family)
    batch = make_batch(family, pad_last=4)
    handle = migu.attach(model, migu.MiguConfig(0.7, ignore_padding=True))
    modules = dict(model.named_modules())
    targets = {u.name: modules[u.name] for u in handle.units}
    outputs = {}
    hooks = [
        m.register_forward_hook(lambda mod, a, o, n=n: outputs.__setitem__(n, o.detach().double()))
        for n, m in targets.items()
    ]
    model(**batch).loss.backward()
    handle.apply_masks()
    for h in hooks:
        h.remove()
    enc_mask = batch["attention_mask"]
    dec_mask = (batch["labels"] != -100) if family == "t5" else None
    for name in targets:
        y = outputs[name]
        stream = handle._sources[name].stream
        mask = dec_mask if stream == "decoder" else enc_mask
        if family == "t5" and ".EncDecAttention." in name and name.endswith((".k", ".v")):
            assert stream == "encoder"
        assert tuple(mask.shape) == tuple(y.shape[:-1]), (name, stream)
        expected = magnitude([y], [mask])
        torch.testing.assert_close(handle.magnitudes[name].double(), expected, rtol=1e-5, atol=1e-6)
        # and it differs from counting every position
        assert not torch.allclose(magnitude([y]), expected)
    handle.remove()


def test_token_normalized_magnitude_matches_reference():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(3, 5, 7, generator=g)
    pad = torch.ones(3, 5)
    pad[1, 3:] = 0
    for normalize in ("none", "token"):
        for mask in (None, pad):
            got = output_magnitude(y, mask, normalize)
            exp = magnitude([y.double()], None if mask is None else [mask], normalize)
            torch.testing.assert_close(got.double(), exp, rtol=1e-6, atol=1e-6)
    # per-token normalization changes the ranking when token scales differ
    y2 = torch.tensor([[[10.0, 0.0, 1.0]], [[0.0, 0.1, 0.0]]])  # (2, 1, 3)
    assert output_magnitude(y2)[1] < output_magnitude(y2)[2]
    assert output_magnitude(y2, normalize="token")[1] > output_magnitude(y2, normalize="token")[2]


def test_bf16_magnitudes_accumulate_in_float32():
    y = torch.full((1, 4096, 2), 1.0, dtype=torch.bfloat16)
    assert output_magnitude(y).dtype == torch.float32
    assert output_magnitude(y)[0].item() == 4096.0  # a bf16 running sum would stall at 256


def test_keep_mask_floor_and_deterministic_ties():
    assert [num_masked(10, t) for t in (0.0, 0.05, 0.1, 0.7, 0.99)] == [0, 0, 1, 7, 9]
    m = torch.tensor([3.0, 1.0, 1.0, 2.0, 1.0])
    keep = keep_mask(m, 0.4)  # floor(2.0) = 2 masked: the two lowest indices among the tied 1.0s
    assert keep.tolist() == [True, False, False, True, True]
    assert torch.equal(keep_mask(m.repeat(3, 1), 0.4), keep.repeat(3, 1))
    torch.manual_seed(0)
    for _ in range(20):
        r = torch.randint(0, 4, (13,)).float()  # many ties
        assert torch.equal(keep_mask(r, 0.7), reference_keep(r.double(), 0.7))


@pytest.mark.parametrize("t", [-0.1, 1.0, 1.5, float("nan"), "0.7", True])
def test_threshold_out_of_range_is_value_error(t):
    with pytest.raises(ValueError, match="threshold"):
        migu.MiguConfig(threshold=t)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "fast"}, "mode"),
        ({"normalize": "l2"}, "normalize"),
        ({"targets": []}, "targets"),
        ({"targets": ""}, "targets"),
    ],
)
def test_bad_config_fields(kwargs, match):
    with pytest.raises(ValueError, match=match):
        migu.MiguConfig(**kwargs)


def test_model_without_linear_layers():
    with pytest.raises(ValueError, match="no linear layer"):
        migu.attach(nn.Sequential(nn.Embedding(5, 4), nn.ReLU()))


def test_pattern_that_matches_nothing_names_the_layers():
    with pytest.raises(ValueError, match=r"'qkv_proj' matches no linear layer.*q_proj"):
        migu.attach(build("llama"), migu.MiguConfig(targets=["q_proj", "qkv_proj"]))
    with pytest.raises(ValueError, match="regex"):
        migu.attach(build("llama"), migu.MiguConfig(targets=r".*\.nothing"))


def test_only_frozen_layers_selected():
    model = build("llama")
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match="frozen"):
        migu.attach(model)


def test_attaching_twice_is_an_error():
    model = build("gpt2")
    handle = migu.attach(model)
    with pytest.raises(RuntimeError, match="already attached"):
        migu.attach(model)
    with pytest.raises(RuntimeError, match="already attached"):
        migu.attach(model.transformer.h[0])  # a part of the same model
    handle.remove()
    migu.attach(model).remove()


def test_strict_needs_optimizer():
    with pytest.raises(ValueError, match="optimizer"):
        migu.attach(build("llama"), migu.MiguConfig(mode="strict"))


def test_explicit_targets_and_exclude():
    model = build("llama")
    handle = migu.attach(
        model, migu.MiguConfig(targets=["q_proj", "down_proj"], exclude=["layers.1.self_attn.q_proj"])
    )
    assert [u.name for u in handle.units] == [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.mlp.down_proj",
        "model.layers.1.mlp.down_proj",
    ]
    handle.remove()
    handle = migu.attach(model, migu.MiguConfig(targets="all-linear"))
    assert "lm_head" in [u.name for u in handle.units]
    handle.remove()


def test_ignore_padding_without_mask_warns_once():
    model = build("llama")
    handle = migu.attach(model, migu.MiguConfig(ignore_padding=True))
    batch = make_batch("llama")
    batch.pop("attention_mask")
    with pytest.warns(UserWarning, match="attention_mask"):
        model(**batch)
    handle.set_token_mask(torch.ones(3, 9))  # wrong length: a clear error, not a silent misuse
    with pytest.raises(RuntimeError, match="does not fit"):
        model(**batch)
    handle.remove()
