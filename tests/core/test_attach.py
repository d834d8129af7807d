"""MIGU on tiny random BERT, GPT-2, Llama and T5: masks, which rows move, strict mode, T = 0, removal."""

from __future__ import annotations

import copy

import pytest
import torch
from reference import InputRecorder, linear_out, magnitude, reference_keep
from tiny_models import build, make_batch
from transformers.pytorch_utils import Conv1D

import migu


def _target_modules(model, handle):
    modules = dict(model.named_modules())
    return {u.name: modules[u.name] for u in handle.units}


def _expected_keep(model, handle, recorder, threshold, normalize="none", masks=None):
    modules = _target_modules(model, handle)
    expected = {}
    for name, module in modules.items():
        conv = isinstance(module, Conv1D)
        ys = [
            linear_out(x, w, b, conv)
            for x, w, b in ((x, module._w0, module._b0) for x in recorder.inputs[name])
        ]
        expected[name] = reference_keep(magnitude(ys, masks, normalize), threshold)
    return expected


def _stash_initial_weights(model, handle):
    for module in _target_modules(model, handle).values():
        module._w0 = module.weight.detach().clone()
        module._b0 = None if module.bias is None else module.bias.detach().clone()


@pytest.mark.parametrize("threshold", [0.7, 0.4])
def test_masks_equal_reference_and_only_kept_rows_move(family, threshold):
    model = build(family)
    plain = copy.deepcopy(model)
    before = copy.deepcopy(model.state_dict())
    batches = [make_batch(family, seed=1)]

    cfg = migu.MiguConfig(threshold=threshold)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    handle = migu.attach(model, cfg, optimizer=opt)
    _stash_initial_weights(model, handle)
    recorder = InputRecorder(_target_modules(model, handle))
    model(**batches[0]).loss.backward()
    opt.step()
    recorder.remove()

    # Plain SGD on an identical copy: kept rows and every non-target parameter must equal it bit for bit.
    popt = torch.optim.SGD(plain.parameters(), lr=0.5)
    plain(**batches[0]).loss.backward()
    popt.step()

    expected = _expected_keep(model, handle, recorder, threshold)
    assert set(handle.masks) == set(expected)
    after, ref_after = model.state_dict(), plain.state_dict()
    unit_params = {}
    for unit in handle.units:
        keep = handle.masks[unit.name]
        assert torch.equal(keep, expected[unit.name]), unit.name
        assert int((~keep).sum()) == int(threshold * unit.num_units + 1e-9)
        unit_params[unit.name + ".weight"] = (keep, unit.unit_dim)
        if unit.bias is not None:
            unit_params[unit.name + ".bias"] = (keep, 0)
    for key, value in after.items():
        if key in unit_params:
            keep, dim = unit_params[key]
            moved_rows = (value != before[key]).movedim(dim, 0).reshape(keep.shape[0], -1).any(1)
            assert not moved_rows[~keep].any(), f"masked rows of {key} moved"
            if key.endswith("weight"):  # (a key bias has a zero gradient: softmax ignores it)
                assert moved_rows[keep].all(), f"a kept row of {key} did not move"
            kept_idx = keep.nonzero().squeeze(1)
            assert torch.equal(value.index_select(dim, kept_idx), ref_after[key].index_select(dim, kept_idx))
        else:
            assert torch.equal(value, ref_after[key]), f"non-target parameter {key} differs from plain SGD"


def test_default_targets_are_attention_and_ffn(family):
    model = build(family)
    handle = migu.attach(model)
    names = [u.name for u in handle.units]
    expected_count = {"bert": 2 * 6, "gpt2": 2 * 4, "llama": 2 * 7, "t5": 2 * 6 + 2 * 10}[family]
    assert len(names) == expected_count, names
    assert not any(
        n.split(".")[-1] in ("lm_head", "classifier", "pooler", "dense") and "layer" not in n for n in names
    )
    assert not any("embed" in n or "lm_head" in n or "classifier" in n or "pooler" in n for n in names)
    handle.remove()


def test_gradient_accumulation_gives_one_mask_from_summed_magnitudes():
    model = build("llama")
    batches = [make_batch("llama", seed=s) for s in (1, 2, 3)]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7), optimizer=opt)
    _stash_initial_weights(model, handle)
    recorder = InputRecorder(_target_modules(model, handle))
    for b in batches:
        model(**b).loss.backward()
    opt.step()
    recorder.remove()
    assert handle.steps == 1
    expected = _expected_keep(model, handle, recorder, 0.7)
    for name, keep in handle.masks.items():
        assert len(recorder.inputs[name]) == 3
        assert torch.equal(keep, expected[name]), name
    # The mask of the summed magnitudes differs from the first micro-batch's alone for some layer:
    # otherwise this test could not tell accumulation from "mask of the last/first forward".
    first_only = {}
    for name, module in _target_modules(model, handle).items():
        y = linear_out(recorder.inputs[name][0], module._w0, module._b0)
        first_only[name] = reference_keep(magnitude([y]), 0.7)
    assert any(not torch.equal(first_only[n], expected[n]) for n in expected)


def test_threshold_zero_is_bit_identical_to_plain_training(family):
    model, plain = build(family), build(family)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    popt = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.0), optimizer=opt)
    for step in range(3):
        for m, o in ((model, opt), (plain, popt)):
            m(**make_batch(family, seed=step)).loss.backward()
            o.step()
            o.zero_grad()
    assert handle.steps == 3 and handle.update_fraction == 1.0
    for (k, a), (_, b) in zip(model.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_disabled_handle_trains_like_plain():
    model, plain = build("gpt2"), build("gpt2")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    popt = torch.optim.SGD(plain.parameters(), lr=0.1)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7), optimizer=opt)
    handle.enabled = False
    for m, o in ((model, opt), (plain, popt)):
        m(**make_batch("gpt2")).loss.backward()
        o.step()
    assert handle.steps == 0
    for (k, a), (_, b) in zip(model.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


@pytest.mark.parametrize("family_", ["llama", "gpt2"])
def test_strict_mode_adamw_keeps_masked_rows_and_state(family_):
    model = build(family_)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7, mode="strict"), optimizer=opt)
    for step in range(4):
        before = {id(u.weight): u.weight.detach().clone() for u in handle.units}
        state_before = {
            id(u.weight): {k: v.clone() for k, v in opt.state[u.weight].items() if v.shape == u.weight.shape}
            for u in handle.units
        }
        model(**make_batch(family_, seed=step)).loss.backward()
        opt.step()
        opt.zero_grad()
        for u in handle.units:
            keep, dim = handle.masks[u.name], u.unit_dim
            masked, kept = (~keep).nonzero().squeeze(1), keep.nonzero().squeeze(1)
            w0, w1 = before[id(u.weight)], u.weight.detach()
            assert torch.equal(w1.index_select(dim, masked), w0.index_select(dim, masked)), (step, u.name)
            assert not torch.equal(w1.index_select(dim, kept), w0.index_select(dim, kept))
            for k, v0 in state_before[id(u.weight)].items():  # empty before the first step
                v1 = opt.state[u.weight][k]
                assert torch.equal(v1.index_select(dim, masked), v0.index_select(dim, masked)), (
                    step,
                    u.name,
                    k,
                )


def test_grad_mode_adamw_lets_momentum_move_masked_rows():
    """The official behaviour: only the gradient is masked, so weight decay and momentum still act."""
    model = build("llama")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(threshold=0.7, mode="grad"), optimizer=opt)
    unit = handle.units[0]
    w0 = unit.weight.detach().clone()
    model(**make_batch("llama")).loss.backward()
    opt.step()
    masked = (~handle.masks[unit.name]).nonzero().squeeze(1)
    assert not torch.equal(unit.weight.detach()[masked], w0[masked])  # weight decay moved them


def test_remove_leaves_no_hook_and_keeps_other_hooks():
    model = build("bert")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    calls = []
    user_hook = model.bert.encoder.layer[0].attention.self.query.register_forward_hook(
        lambda *a: calls.append(1)
    )
    user_opt_hook = opt.register_step_pre_hook(lambda *a: calls.append(2))

    def hook_counts():
        counts = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
        return counts, len(opt._optimizer_step_pre_hooks), len(opt._optimizer_step_post_hooks)

    before = hook_counts()
    with migu.attach(
        model, migu.MiguConfig(0.7, ignore_padding=True, mode="strict"), optimizer=opt
    ) as handle:
        assert hook_counts() != before
        model(**make_batch("bert")).loss.backward()
        opt.step()
        assert handle.steps == 1
    assert hook_counts() == before
    calls.clear()
    model(**make_batch("bert")).loss.backward()
    opt.step()
    assert calls == [1, 2]  # the user's hooks still fire
    user_hook.remove()
    user_opt_hook.remove()
    with pytest.raises(RuntimeError, match="removed"):
        handle.apply_masks()
    migu.attach(model).remove()  # attaching again after removal is fine


def test_eval_forwards_do_not_count():
    model = build("llama")
    handle = migu.attach(model, migu.MiguConfig(0.7))
    with torch.no_grad():
        model(**make_batch("llama", seed=5))
    assert all(s.total is None for s in handle._sources.values())
    model(**make_batch("llama")).loss.backward()
    handle.apply_masks()
    assert handle.steps == 1 and len(handle.masks) == len(handle.units)
    handle.remove()


def test_manual_apply_without_optimizer_masks_grads():
    model = build("gpt2")
    handle = migu.attach(model, migu.MiguConfig(0.5))
    model(**make_batch("gpt2")).loss.backward()
    handle.apply_masks()
    for u in handle.units:
        keep = handle.masks[u.name]
        g = u.weight.grad.movedim(u.unit_dim, 0)  # (d_out, d_in)
        assert torch.count_nonzero(g[~keep]) == 0
        assert (g[keep].abs().sum(1) > 0).all()
        if u.bias is not None:
            assert torch.count_nonzero(u.bias.grad[~keep]) == 0
    assert 0.45 < handle.update_fraction <= 0.55
    fractions = handle.layer_update_fractions()
    assert set(fractions) == {u.name for u in handle.units}
    handle.remove()


@pytest.mark.parametrize("mode", ["grad", "strict"])
def test_masking_before_clipping_then_step_masks_once(mode):
    """apply_masks() before clip_grad_norm_: the step pre-hook must not mask a second time."""
    model = build("bert")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(0.7, mode=mode), optimizer=opt)
    for step in range(2):
        before = {u.name: u.weight.detach().clone() for u in handle.units}
        model(**make_batch("bert", seed=step)).loss.backward()
        handle.apply_masks()
        masks = {n: k.clone() for n, k in handle.masks.items()}
        # The clip sees the masked gradient: its norm comes from the kept rows only.
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
        opt.step()
        opt.zero_grad()
        assert handle.steps == step + 1  # one mask per optimizer step, not two
        assert masks.keys() == handle.masks.keys()
        for name, keep in handle.masks.items():
            assert torch.equal(keep, masks[name])  # the hook did not replace it by an empty mask
        if mode == "strict":
            for u in handle.units:
                w = u.weight.detach().movedim(u.unit_dim, 0)  # (d_out, d_in)
                w0 = before[u.name].movedim(u.unit_dim, 0)
                assert torch.equal(w[~masks[u.name]], w0[~masks[u.name]]), u.name
    handle.remove()
