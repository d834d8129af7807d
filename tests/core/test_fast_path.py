"""MiguConfig(fast_path=True): kept-row weight gradients, equal to the dense masked path.

What is checked against what:
- gradients: the dense path (``fast_path=False``) and plain backward on an identical copy;
- masks and the accumulation statement: the independent reference (tests/reference.py);
- DDP: 2 gloo processes (this file run as a torchrun worker) against one process.
"""

from __future__ import annotations

import copy
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tiny_models when run as a DDP worker

import pytest  # noqa: E402
import torch  # noqa: E402
from launch import exit_worker, run_launch, torchrun
from peft import LoraConfig, get_peft_model  # noqa: E402
from reference import InputRecorder, linear_out, magnitude, reference_keep  # noqa: E402
from tiny_models import build, make_batch  # noqa: E402
from torch import nn  # noqa: E402
from transformers.pytorch_utils import Conv1D  # noqa: E402

import migu  # noqa: E402
from migu.core.fast_path import MaskedWeightGradLinear, RowSlot  # noqa: E402
from migu.core.mask import keep_indices, keep_mask  # noqa: E402

FAST = migu.MiguConfig(threshold=0.7, fast_path=True)
DENSE = migu.MiguConfig(threshold=0.7)


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _modules(model: nn.Module, handle: migu.MiguHandle) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    return {u.name: modules[u.name] for u in handle.units}


def _assert_grads_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], **tol) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name, **tol)


# ---------------------------------------------------------------------------- the Function alone
# Conv1D (transposed) always has a bias.
@pytest.mark.parametrize("transposed, with_bias", [(False, True), (False, False), (True, True)])
def test_function_gradients_equal_dense_masked(transposed, with_bias):
    torch.manual_seed(0)
    d_in, d_out = 12, 10
    x = torch.randn(3, 5, d_in, requires_grad=True)  # (B, T, d_in)
    w = torch.randn(*((d_in, d_out) if transposed else (d_out, d_in)), requires_grad=True)
    b = torch.randn(d_out, requires_grad=True) if with_bias else None
    g = torch.randn(3, 5, d_out)  # (B, T, d_out)
    slot = RowSlot()
    slot.keep, masked = keep_indices(torch.rand(d_out), 0.7)
    keep = torch.zeros(d_out, dtype=torch.bool).index_fill_(0, slot.keep, True)

    y = MaskedWeightGradLinear.apply(x, w, b, slot, transposed)
    ref = (x @ w if transposed else x @ w.t()) + (b if b is not None else 0)
    assert torch.equal(y, torch.addmm(b, x.view(-1, d_in), w).view(3, 5, d_out) if transposed else ref)
    y.backward(g)
    fast = (x.grad.clone(), w.grad.clone(), None if b is None else b.grad.clone())
    x.grad = w.grad = None
    if b is not None:
        b.grad = None
    ref.backward(g)
    unit_dim = 1 if transposed else 0
    torch.testing.assert_close(fast[0], x.grad)  # input gradient: unchanged
    dense_w = w.grad.clone().index_fill_(unit_dim, masked, 0)
    torch.testing.assert_close(fast[1], dense_w)
    masked_rows = fast[1].movedim(unit_dim, 0)[~keep]  # (k, d_in)
    assert torch.equal(masked_rows, torch.zeros_like(masked_rows))
    if b is not None:
        torch.testing.assert_close(fast[2], b.grad * keep)
        assert torch.equal(fast[2][~keep], torch.zeros(int((~keep).sum())))


def test_function_without_mask_gives_dense_gradients():
    torch.manual_seed(0)
    x = torch.randn(4, 6, requires_grad=True)
    w = torch.randn(5, 6, requires_grad=True)
    MaskedWeightGradLinear.apply(x, w, None, RowSlot(), False).pow(2).sum().backward()
    fast = (x.grad.clone(), w.grad.clone())
    x.grad = w.grad = None
    (x @ w.t()).pow(2).sum().backward()
    torch.testing.assert_close(fast[0], x.grad)
    torch.testing.assert_close(fast[1], w.grad)


def test_keep_indices_match_keep_mask_with_ties():
    g = torch.Generator().manual_seed(0)
    m = torch.randint(0, 4, (3, 17), generator=g).float()  # many ties: lower index masked first
    for t in (0.0, 0.3, 0.7, 0.95):
        kept, masked = keep_indices(m, t)
        keep = keep_mask(m, t)
        for row in range(3):
            assert torch.equal(kept[row], keep[row].nonzero().squeeze(1))
            assert torch.equal(masked[row], (~keep[row]).nonzero().squeeze(1))


# ---------------------------------------------------------------------------- whole models
def test_weight_grads_equal_dense_masked_grads(family):
    model = build(family)
    dense = copy.deepcopy(model)
    plain = copy.deepcopy(model)
    fast_h, dense_h = migu.attach(model, FAST), migu.attach(dense, DENSE)
    # Every target is nn.Linear or Conv1D (GPT-2): all on the fast path.
    assert fast_h.fast_path_units == [u.name for u in fast_h.units] and not fast_h.fast_path_fallbacks
    batch = make_batch(family, seed=1, pad_last=3)
    for m in (model, dense, plain):
        m(**batch).loss.backward()
    before_step = _grads(model)
    fast_h.apply_masks()
    dense_h.apply_masks()
    assert fast_h.masks.keys() == dense_h.masks.keys()
    for name in fast_h.masks:
        assert torch.equal(fast_h.masks[name], dense_h.masks[name]), name
    fast_g, dense_g, plain_g = _grads(model), _grads(dense), _grads(plain)
    _assert_grads_close(fast_g, dense_g)
    units = {u.name + ".weight": u for u in fast_h.units} | {
        u.name + ".bias": u for u in fast_h.units if u.bias is not None
    }
    for name, grad in before_step.items():
        assert torch.equal(grad, fast_g[name]), f"{name}: the step-time mask changed a fast-path gradient"
        unit = units.get(name)
        if unit is None:  # not a target: exactly what plain backward gives (float tolerance)
            torch.testing.assert_close(grad, plain_g[name], msg=name)
            continue
        dim = unit.unit_dim if name.endswith("weight") else 0
        masked = (~fast_h.masks[unit.name]).nonzero().squeeze(1)
        assert not grad.index_select(dim, masked).any(), f"{name}: masked rows not exactly zero"
    fast_h.remove()
    dense_h.remove()


def test_input_gradient_equals_plain_backward():
    model, plain = build("llama"), build("llama")
    handle = migu.attach(model, FAST)
    batch = make_batch("llama", seed=2)
    grads = []
    for m in (model, plain):
        embeds = m.get_input_embeddings()(batch["input_ids"]).detach().requires_grad_(True)  # (B, T, d)
        inputs = {"attention_mask": batch["attention_mask"], "labels": batch["labels"]}
        m(inputs_embeds=embeds, **inputs).loss.backward()
        grads.append(embeds.grad)
    assert handle.steps == 0 and len(handle.fast_path_units) == 14
    torch.testing.assert_close(grads[0], grads[1])
    handle.remove()


@pytest.mark.parametrize("family_", ["bert", "gpt2"])
def test_one_sgd_step_moves_exactly_the_kept_rows(family_):
    model, plain = build(family_), build(family_)
    before = copy.deepcopy(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    popt = torch.optim.SGD(plain.parameters(), lr=0.5)
    handle = migu.attach(model, FAST, optimizer=opt)
    batch = make_batch(family_, seed=3)
    for m, o in ((model, opt), (plain, popt)):
        m(**batch).loss.backward()
        o.step()
    after, ref = model.state_dict(), plain.state_dict()
    for unit in handle.units:
        keep = handle.masks[unit.name]
        for suffix, dim in (("weight", unit.unit_dim), ("bias", 0)):
            key = f"{unit.name}.{suffix}"
            if key not in after:
                continue
            moved = (after[key] != before[key]).movedim(dim, 0).reshape(keep.shape[0], -1).any(1)
            assert not moved[~keep].any(), f"masked rows of {key} moved"
            if suffix == "weight":
                assert moved[keep].all(), f"a kept row of {key} did not move"
            kept = keep.nonzero().squeeze(1)
            torch.testing.assert_close(after[key].index_select(dim, kept), ref[key].index_select(dim, kept))
    handle.remove()


def test_threshold_zero_is_bit_identical_to_plain_training(family):
    model, plain = build(family), build(family)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    popt = torch.optim.AdamW(plain.parameters(), lr=1e-2, weight_decay=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # T = 0: nothing falls back "unexpectedly", no warning
        handle = migu.attach(model, migu.MiguConfig(threshold=0.0, fast_path=True), optimizer=opt)
    assert handle.fast_path_units == []
    for step in range(3):
        for m, o in ((model, opt), (plain, popt)):
            m(**make_batch(family, seed=step)).loss.backward()
            o.step()
            o.zero_grad()
    for (k, a), (_, b) in zip(model.state_dict().items(), plain.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_strict_mode_with_fast_path_equals_strict_dense():
    model = build("llama")
    dense = copy.deepcopy(model)
    w0 = copy.deepcopy(model.state_dict())
    runs = []
    for m, fast in ((model, True), (dense, False)):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
        h = migu.attach(m, migu.MiguConfig(0.7, mode="strict", fast_path=fast), optimizer=opt)
        m(**make_batch("llama", seed=4)).loss.backward()
        opt.step()
        runs.append((h, opt))
    (fh, fopt), (dh, _) = runs
    for unit in fh.units:
        assert torch.equal(fh.masks[unit.name], dh.masks[unit.name])
        masked = (~fh.masks[unit.name]).nonzero().squeeze(1)
        w = unit.weight.detach()
        assert torch.equal(w.index_select(0, masked), w0[unit.name + ".weight"].index_select(0, masked))
        for state in fopt.state[unit.weight].values():
            if torch.is_tensor(state) and state.shape == w.shape:
                assert not state.index_select(0, masked).any()  # first step: state rows stay at 0
    for (k, a), (_, b) in zip(model.state_dict().items(), dense.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, msg=k)


# ---------------------------------------------------------------------------- accumulation
def test_gradient_accumulation_uses_the_running_mask():
    """Stated semantics: micro-batch i is masked by the mask of the magnitudes of micro-batches 1..i.

    Expected (reference masks M1 = mask(m1), M2 = mask(m1 + m2) = the step's mask; g_i = plain
    gradient of micro-batch i): before the step ``.grad = M1*g1 + M2*g2``; after the step-time mask
    ``M2*(M1*g1 + g2)``. The dense path gives ``M2*(g1 + g2)``: same mask, same masked (zero) rows.
    """
    model = build("llama")
    plain, dense = copy.deepcopy(model), copy.deepcopy(model)
    handle = migu.attach(model, FAST)
    dense_h = migu.attach(dense, DENSE)
    modules = _modules(model, handle)
    w0 = {n: (m.weight.detach().clone(), m.bias) for n, m in modules.items()}
    recorder = InputRecorder(modules)
    batches = [make_batch("llama", seed=s) for s in (11, 12)]
    plain_grads = []
    for b in batches:
        model(**b).loss.backward()
        dense(**b).loss.backward()
        plain.zero_grad()
        plain(**b).loss.backward()
        plain_grads.append(_grads(plain))
    recorder.remove()
    before_step = _grads(model)
    handle.apply_masks()
    dense_h.apply_masks()
    fast_g, dense_g = _grads(model), _grads(dense)
    differs = False
    for name in modules:
        w, _ = w0[name]
        ys = [linear_out(x, w, None) for x in recorder.inputs[name]]
        m1 = reference_keep(magnitude(ys[:1]), 0.7).unsqueeze(1)  # (d_out, 1)
        m2 = reference_keep(magnitude(ys), 0.7).unsqueeze(1)
        assert torch.equal(handle.masks[name], m2.squeeze(1))
        assert torch.equal(dense_h.masks[name], m2.squeeze(1))
        key = name + ".weight"
        g1, g2 = plain_grads[0][key], plain_grads[1][key]
        torch.testing.assert_close(before_step[key], m1 * g1 + m2 * g2, msg=key)
        torch.testing.assert_close(fast_g[key], m2 * (m1 * g1 + g2), msg=key)
        torch.testing.assert_close(dense_g[key], m2 * (g1 + g2), msg=key)
        differs |= not torch.equal(m1, m2)
    assert differs, "the running mask never differed from the step's: this test would not see a difference"
    # Non-target parameters are untouched by either path.
    for key in fast_g:
        if key.rsplit(".", 1)[0] not in modules:
            torch.testing.assert_close(fast_g[key], dense_g[key], msg=key)


# ---------------------------------------------------------------------------- fallbacks
def test_lora_factors_fall_back_to_dense_and_base_linears_take_the_fast_path():
    def lora_llama():
        model = build("llama")
        cfg = LoraConfig(r=4, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "v_proj"])
        model = get_peft_model(model, cfg)
        for name, p in model.named_parameters():
            if ".mlp." in name:  # full fine-tuning of the FFN beside the adapters
                p.requires_grad_(True)
        for m in model.modules():  # random B, so A's gradient is not zero
            if hasattr(m, "lora_B"):
                nn.init.normal_(m.lora_B["default"].weight)
        return model

    torch.manual_seed(0)
    model = lora_llama()
    dense = copy.deepcopy(model)
    with pytest.warns(UserWarning, match="keep the dense path"):
        handle = migu.attach(model, FAST)
    dense_h = migu.attach(dense, DENSE)
    lora_units = [u.name for u in handle.units if ".lora_" in u.name]
    assert len(lora_units) == 8
    assert all(handle.fast_path_fallbacks[n] == "PEFT LoRA factor" for n in lora_units)
    assert len(handle.fast_path_units) == 6 and all(".mlp." in n for n in handle.fast_path_units)
    batch = make_batch("llama", seed=5)
    for m, h in ((model, handle), (dense, dense_h)):
        m(**batch).loss.backward()
        h.apply_masks()
    _assert_grads_close(_grads(model), _grads(dense))


def test_subclass_with_own_forward_and_replaced_forward_fall_back():
    class Scaled(nn.Linear):
        def forward(self, x):
            return 2 * super().forward(x)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), Scaled(10, 10), nn.Linear(10, 10), nn.Linear(10, 3))
    model[2].forward = model[2].forward  # someone else's instance forward (e.g. accelerate's hooks)
    with pytest.warns(UserWarning, match="keep the dense path"):
        handle = migu.attach(model, migu.MiguConfig(0.7, targets=["0", "1", "2"], fast_path=True))
    assert handle.fast_path_units == ["0"]
    assert "own forward" in handle.fast_path_fallbacks["1"]
    assert "already replaced" in handle.fast_path_fallbacks["2"]
    handle.remove()


def test_paused_handle_and_eval_use_the_module_forward():
    model = build("gpt2")
    handle = migu.attach(model, FAST)
    attn = model.transformer.h[0].attn.c_attn
    assert isinstance(attn, Conv1D) and "forward" in attn.__dict__
    seen = []
    hook = attn.register_forward_hook(lambda mod, args, out: seen.append(out.grad_fn))
    batch = make_batch("gpt2")
    with torch.no_grad():
        model(**batch)
    handle.enabled = False
    model(**batch)
    handle.enabled = True
    model(**batch)
    hook.remove()
    assert seen[0] is None and "MaskedWeightGrad" not in type(seen[1]).__name__
    assert "MaskedWeightGrad" in type(seen[2]).__name__
    handle.remove()


# ---------------------------------------------------------------------------- checkpointing, autocast
@pytest.mark.parametrize("reentrant", [False, True])
def test_activation_checkpointing(reentrant):
    """Non-reentrant: the original forward's slots are used. Reentrant: dense, masked at step time."""
    model = build("llama")
    dense = copy.deepcopy(model)
    handles = []
    for m, cfg in ((model, FAST), (dense, DENSE)):
        if hasattr(m, "activation_checkpointing_enable"):  # transformers >= 5.x
            m.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": reentrant})
        else:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": reentrant})
        handles.append(migu.attach(m, cfg))
    batch = make_batch("llama", seed=6)
    for m, h in zip((model, dense), handles, strict=True):
        m(**batch).loss.backward()
        h.apply_masks()
    assert handles[0].masks.keys() == handles[1].masks.keys()
    _assert_grads_close(_grads(model), _grads(dense))


def test_autocast_bf16_matches_dense_under_autocast():
    model = build("llama")
    dense = copy.deepcopy(model)
    fast_h, dense_h = migu.attach(model, FAST), migu.attach(dense, DENSE)
    batch = make_batch("llama", seed=7)
    for m, h in ((model, fast_h), (dense, dense_h)):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = m(**batch).loss
        loss.backward()
        h.apply_masks()
    fast_g, dense_g = _grads(model), _grads(dense)
    assert all(g.dtype == torch.float32 for g in fast_g.values())
    _assert_grads_close(fast_g, dense_g, rtol=2e-2, atol=2e-3)
    for unit in fast_h.units:
        masked = (~fast_h.masks[unit.name]).nonzero().squeeze(1)
        assert not unit.weight.grad.index_select(0, masked).any()


# ---------------------------------------------------------------------------- lifetime, config
def test_remove_restores_forward_and_hooks_exactly():
    model = build("bert")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    dicts_before = [dict(m.__dict__) for m in linears]
    hooks_before = [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()]
    with migu.attach(model, migu.MiguConfig(0.7, ignore_padding=True, fast_path=True), optimizer=opt) as h:
        assert len(h.fast_path_units) == 12
        model(**make_batch("bert")).loss.backward()
        opt.step()
        opt.zero_grad()
    for m, before in zip(linears, dicts_before, strict=True):
        assert "forward" not in m.__dict__
        assert m.forward.__func__ is nn.Linear.forward
        assert m.__dict__.keys() == before.keys()
    assert [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()] == hooks_before
    plain = copy.deepcopy(model)
    batch = make_batch("bert", seed=8)
    model(**batch).loss.backward()
    plain(**batch).loss.backward()
    for (k, a), (_, b) in zip(_grads(model).items(), _grads(plain).items(), strict=True):
        assert torch.equal(a, b), k


def test_config_validation():
    with pytest.raises(ValueError, match="fast_path"):
        migu.MiguConfig(fast_path=1)
    with pytest.raises(ValueError, match="criterion='output'"):
        migu.MiguConfig(fast_path=True, criterion="gradient")
    assert migu.MiguConfig(fast_path=True).to_dict()["fast_path"] is True


# ---------------------------------------------------------------------------- DDP (slow)
STEPS, GLOBAL_BATCH, PER_RANK = 3, 4, 2


def _one_process(fast: bool, micro: int):
    """One process on the global batch; micro-batch i is the union of the ranks' micro-batches i."""
    model = build("llama")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(0.7, fast_path=fast), optimizer=opt)
    masks = []
    for step in range(STEPS):
        batch = make_batch("llama", batch=GLOBAL_BATCH, seed=100 + step)
        for i in range(micro):
            # rank r holds rows [r*PER_RANK, (r+1)*PER_RANK) and takes them in `micro` micro-batches
            rows = [r * PER_RANK + j for r in range(2) for j in range(PER_RANK) if j * micro // PER_RANK == i]
            part = {k: v[rows] for k, v in batch.items()}
            (model(**part).loss / micro).backward()
        opt.step()
        opt.zero_grad()
        masks.append({k: v.clone() for k, v in handle.masks.items()})
    return model.state_dict(), masks


def _ddp_worker(out: str, micro: int) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model = build("llama")
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    handle = migu.attach(model, migu.MiguConfig(0.7, fast_path=True), optimizer=opt)
    masks = []
    for step in range(STEPS):
        batch = make_batch("llama", batch=GLOBAL_BATCH, seed=100 + step)
        mine = {k: v[rank * PER_RANK : (rank + 1) * PER_RANK] for k, v in batch.items()}
        size = PER_RANK // micro
        for i in range(micro):
            part = {k: v[i * size : (i + 1) * size] for k, v in mine.items()}
            if i < micro - 1:
                with ddp.no_sync():
                    (ddp(**part).loss / micro).backward()
            else:
                (ddp(**part).loss / micro).backward()
        opt.step()
        opt.zero_grad()
        masks.append({k: v.clone() for k, v in handle.masks.items()})
    flat = torch.cat([torch.cat([m.float() for m in s.values()]) for s in masks])
    gathered = [torch.zeros_like(flat) for _ in range(2)]
    dist.all_gather(gathered, flat)
    assert torch.equal(gathered[0], gathered[1]), "ranks took different masks"
    if rank == 0:
        torch.save({"state": model.state_dict(), "masks": masks}, out)
    dist.barrier()
    exit_worker()  # torch's teardown can hang or abort after this point (tests/launch.py)


@pytest.mark.slow
@pytest.mark.parametrize("micro", [1, 2])
def test_ddp_fast_path_equals_one_process(tmp_path, micro):
    """DDP, 2 gloo ranks, fast path. micro=1: equals one process on the global batch on the *dense*
    path (the fast path is exact there). micro=2: equals one process on the fast path whose micro-batch
    i is the union of the ranks' micro-batches i (running masks from rank-averaged magnitudes)."""
    out = tmp_path / "ddp.pt"
    proc = run_launch(lambda: torchrun(__file__, str(out), str(micro)), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ddp = torch.load(out)
    state, masks = _one_process(fast=micro > 1, micro=micro)
    for step in range(STEPS):
        assert masks[step].keys() == ddp["masks"][step].keys()
        for name in masks[step]:
            assert torch.equal(masks[step][name], ddp["masks"][step][name]), (step, name)
    for key, value in state.items():
        # atol = lr * 1e-3: Adam amplifies the float noise of near-zero gradients (see test_distributed).
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-5, msg=key)


if __name__ == "__main__":  # a DDP worker: torchrun ... test_fast_path.py OUT MICRO
    _ddp_worker(sys.argv[1], int(sys.argv[2]))
