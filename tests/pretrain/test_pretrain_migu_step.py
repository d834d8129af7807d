"""One pre-training step with MIGU and SGD: the masked rows of a target weight do not move, and the
kept rows move by exactly -lr * gradient; the mask is checked against tests/reference.py."""

import copy
import warnings

import pytest
import torch
from reference import InputRecorder, linear_out, magnitude, reference_keep

import migu
from migu.engine.steps import train_step
from migu.pretrain.lm import LMBatcher, tokenize_corpus
from migu.pretrain.models import load_language_model

LR, T = 0.5, 0.5
TEXTS = ["the red cat is good", "a blue dog", "the green cow number 7 is a good one", "cat"]


def _target(model, family):
    if family == "llama":
        return model.model.layers[0].mlp.up_proj  # (48, 32), no bias
    return model.bert.encoder.layer[0].intermediate.dense  # (48, 32) with bias


@pytest.mark.parametrize("family", ["llama", "bert"])
def test_masked_rows_do_not_move(family, pretrain_models):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny BERT's MLM head starts random
        lm = load_language_model(str(pretrain_models[family]))
    model = lm.model
    rows = tokenize_corpus(lm.tokenizer, TEXTS, block_size=16)
    batch = LMBatcher(lm.tokenizer, lm.objective, mlm_probability=0.3, seed=0)(rows)
    assert (batch["attention_mask"] == 0).any()  # the batch has padding (counted, as the official code)

    # Independent reference: the plain gradient of a copy, and the layer input of the same forward.
    ref = copy.deepcopy(model)
    ref(**batch).loss.backward()
    layer = _target(model, family)
    ref_layer = _target(ref, family)
    before_w = layer.weight.detach().clone()
    before_b = None if layer.bias is None else layer.bias.detach().clone()

    recorder = InputRecorder({"t": layer})
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    handle = migu.attach(model, migu.MiguConfig(threshold=T), optimizer=opt)
    try:
        train_step(model, [batch], lambda b: model(**b).loss, opt, handle=handle, max_grad_norm=None)
    finally:
        recorder.remove()
        handle.remove()

    y = linear_out(recorder.inputs["t"][0], before_w, before_b)  # (B, T, d_out) in float64
    keep = reference_keep(magnitude([y]), T)  # (d_out,)
    assert keep.sum().item() == before_w.shape[0] - int(T * before_w.shape[0])
    after_w = layer.weight.detach()
    assert torch.equal(after_w[~keep], before_w[~keep])  # masked rows: bit-identical
    expected = before_w[keep] - LR * ref_layer.weight.grad[keep]
    torch.testing.assert_close(after_w[keep], expected)
    assert not torch.equal(after_w[keep], before_w[keep])
    if before_b is not None:
        assert torch.equal(layer.bias.detach()[~keep], before_b[~keep])
        torch.testing.assert_close(layer.bias.detach()[keep], before_b[keep] - LR * ref_layer.bias.grad[keep])
