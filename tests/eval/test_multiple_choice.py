"""Tests for migu.eval.multiple_choice: batched log-likelihood scoring against a one-at-a-time reference.

The reference scores each (context, continuation) pair alone, without padding or batching, from its
own implementation of lm-eval's tokenization rule. Models are tiny random decoders (Llama, GPT-2)
built with from_config; tokenizers are a byte-level BPE trained here in memory (spaces belong to
the following word, as in GPT-2 / SmolLM2, so tokens can span the context / continuation boundary)
and the word-piece tokenizer of tests/tiny_runs.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import tiny_models  # noqa: F401  (offline mode, 2 threads)
import torch
from reference_mc import reference_loglikelihood

from migu.data.multiple_choice import MCItem
from migu.eval.multiple_choice import choice_length, encode_pair, multiple_choice_accuracy

_CORPUS = [
    "The cat sat on the mat because it was tired.",
    "Question: What is the capital of France?\nAnswer: Paris",
    "The dog ran in the park, therefore it was happy.",
    "Ian volunteered to eat Dennis's menudo because Dennis despised eating intestine.",
    "the cats sat; the dogs ran; the birds flew away over the hills.",
]


def _bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=330,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 10, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def _wordpiece_tokenizer(folder: Path):
    from tiny_runs import _tokenizer

    return _tokenizer(folder)


def _model(kind: str, vocab: int, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    if kind == "llama":
        cfg = LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
        model = LlamaForCausalLM(cfg)
    else:
        cfg = GPT2Config(vocab_size=vocab, n_embd=32, n_layer=2, n_head=4, n_positions=256)
        model = GPT2LMHeadModel(cfg)
    # Larger weights than the default init, so that log-probabilities differ clearly between choices.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.2)
    return model.eval()


# Choices of different token lengths, a context ending in a space (moved into the continuation), a
# continuation without a leading space (its first token may merge with the context's last word), a
# five-way question, and a WinoGrande-style partial item.
ITEMS = [
    MCItem(
        "Question: What is the capital of France?\nAnswer:", (" Paris", " the big city on a hill"), 0, "q0"
    ),
    MCItem("The cat sat on the mat ", ("because it was tired.", "so."), 0, "q1"),
    MCItem("the cat", ("s sat", "s ran away over the hills", " flew"), 1, "q2"),
    MCItem(
        "The dog ran", (" in the park", " away", " fast", " home, therefore it was happy.", " up"), 3, "q3"
    ),
    MCItem(
        "Ian volunteered because _ despised eating intestine.",
        (" despised eating intestine.",) * 2,
        1,
        "wino",
        contexts=("Ian volunteered because Ian", "Ian volunteered because Dennis"),
    ),
]


def _reference(model, tokenizer, items, max_length=None):
    return [
        [reference_loglikelihood(model, tokenizer, c, x, max_length) for c, x in item.requests()]
        for item in items
    ]


def _check(result, reference, items):
    assert result["n"] == len(items)
    for pred, ref, item in zip(result["predictions"], reference, items, strict=True):
        assert pred["id"] == item.id and pred["answer"] == item.answer
        assert pred["loglikelihoods"] == pytest.approx(ref, abs=1e-5)
        assert pred["pred"] == max(range(len(ref)), key=lambda j: ref[j])
        normed = [ll / choice_length(item, j) for j, ll in enumerate(ref)]
        assert pred["pred_norm"] == max(range(len(ref)), key=lambda j: normed[j])
    acc = sum(p["pred"] == p["answer"] for p in result["predictions"]) / len(items)
    assert result["acc"] == acc


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_batched_scores_match_the_reference(kind: str, batch_size: int) -> None:
    tokenizer = _bpe_tokenizer()
    model = _model(kind, len(tokenizer))
    result = multiple_choice_accuracy(model, tokenizer, ITEMS, batch_size=batch_size)
    _check(result, _reference(model, tokenizer, ITEMS), ITEMS)


def test_wordpiece_tokenizer(tmp_path: Path) -> None:
    tokenizer = _wordpiece_tokenizer(tmp_path / "tok")
    model = _model("llama", len(tokenizer))
    result = multiple_choice_accuracy(model, tokenizer, ITEMS, batch_size=3)
    _check(result, _reference(model, tokenizer, ITEMS), ITEMS)


def test_boundary_tokens_follow_lm_eval() -> None:
    tokenizer = _bpe_tokenizer()
    # Trailing space of the context moves to the continuation: " because" stays one word token.
    ctx, cont = encode_pair(tokenizer, "The cat sat on the mat ", "because it was tired.")
    assert tokenizer.decode(ctx) == "The cat sat on the mat"
    assert tokenizer.decode(cont) == " because it was tired."
    # The continuation is whatever the whole text has after the context's tokens.
    whole = tokenizer.encode("the cats sat", add_special_tokens=False)
    ctx, cont = encode_pair(tokenizer, "the cat", "s sat")
    assert cont == whole[len(ctx) :] and tokenizer.decode(cont) == "s sat"
    # An empty context becomes BOS.
    assert encode_pair(tokenizer, "", " Paris")[0] == [tokenizer.bos_token_id]


def test_winogrande_partial_item_scores_each_context() -> None:
    tokenizer = _bpe_tokenizer()
    model = _model("llama", len(tokenizer))
    (wino,) = [item for item in ITEMS if item.partial]
    result = multiple_choice_accuracy(model, tokenizer, [wino], batch_size=2)
    lls = result["predictions"][0]["loglikelihoods"]
    ref = [
        reference_loglikelihood(model, tokenizer, c, x)
        for c, x in zip(wino.contexts, wino.choices, strict=True)
    ]
    assert lls == pytest.approx(ref, abs=1e-5)
    assert lls[0] != pytest.approx(lls[1], abs=1e-6)  # same continuation, different contexts
    # Identical continuations have identical lengths: acc_norm decides as acc does.
    assert result["predictions"][0]["pred_norm"] == result["predictions"][0]["pred"]


def test_empty_context_and_left_truncation() -> None:
    tokenizer = _bpe_tokenizer()
    model = _model("llama", len(tokenizer))
    items = [MCItem("", (" Paris", " the cat"), 0, "empty"), *ITEMS]
    pairs = [encode_pair(tokenizer, c, x) for item in items for c, x in item.requests()]
    # Room for the longest continuation plus a little context: several inputs lose their start.
    limit = max(len(cont) for _, cont in pairs) + 2
    assert sum(len(ctx) + len(cont) - 1 > limit for ctx, cont in pairs) >= 3
    result = multiple_choice_accuracy(model, tokenizer, items, batch_size=5, max_length=limit)
    _check(result, _reference(model, tokenizer, items, max_length=limit), items)
    with pytest.raises(ValueError, match="does not fit"):
        multiple_choice_accuracy(model, tokenizer, items, max_length=limit - 3)


def test_acc_norm_uses_characters_without_the_delimiter() -> None:
    item = MCItem("c", (" ab", "abcd", " "), 0, "x")
    assert [choice_length(item, j) for j in range(3)] == [2, 4, 1]


def test_accuracy_on_a_model_that_knows_the_answers() -> None:
    """A model whose next token is always the one after the current one in a fixed chain gets acc 1."""
    tokenizer = _bpe_tokenizer()
    chain = tokenizer.encode("The dog ran in the park", add_special_tokens=False)

    class Oracle(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dummy = torch.nn.Parameter(torch.zeros(1))
            self.config = None

        def forward(self, input_ids, attention_mask):
            logits = torch.full((*input_ids.shape, len(tokenizer)), -10.0)  # [B, L, V]
            for a, b in zip(chain, chain[1:], strict=False):
                logits[input_ids == a, b] = 10.0
            return type("Out", (), {"logits": logits})

    items = [
        MCItem("The dog", (" ran in the park", " flew"), 0, "a"),
        MCItem("The dog ran", (" away", " in the park"), 1, "b"),
    ]
    result = multiple_choice_accuracy(Oracle(), tokenizer, items)
    assert result["acc"] == result["acc_norm"] == 1.0
    assert all(math.isfinite(ll) for p in result["predictions"] for ll in p["loglikelihoods"])


def test_restores_training_mode_and_rejects_bad_input() -> None:
    tokenizer = _bpe_tokenizer()
    model = _model("llama", len(tokenizer)).train()
    multiple_choice_accuracy(model, tokenizer, ITEMS[:1])
    assert model.training
    with pytest.raises(ValueError, match="at least one item"):
        multiple_choice_accuracy(model, tokenizer, [])
    with pytest.raises(ValueError, match="batch_size=0"):
        multiple_choice_accuracy(model, tokenizer, ITEMS, batch_size=0)
    with pytest.raises(ValueError, match="tokenizes to no tokens"):
        multiple_choice_accuracy(model, tokenizer, [MCItem("a", ("", " b"), 0, "x")])
