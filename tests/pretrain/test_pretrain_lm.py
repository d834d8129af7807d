"""Language-modelling batches: causal labels and padding, masked-LM labels, determinism."""

import torch

from migu.pretrain.lm import LMBatcher, causal_lm_batch, tokenize_corpus
from migu.pretrain.models import load_language_model


def test_causal_batch_pads_right_and_never_targets_padding():
    # pad id 7 also occurs as a real token (EOS used as pad): it must stay a target there.
    batch = causal_lm_batch([[5, 6, 7], [8, 7]], pad_token_id=7)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 7, 7]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[5, 6, 7], [8, 7, -100]]


def test_tokenize_corpus_cuts_to_block_size(pretrain_models):
    lm = load_language_model(str(pretrain_models["llama"]))
    rows = tokenize_corpus(lm.tokenizer, ["the red cat is a good cat today", "dog"], block_size=6)
    assert [len(r) for r in rows] == [6, 3]  # cut to 6; "dog" is one word piece plus [CLS], [SEP]
    batch = LMBatcher(lm.tokenizer, "causal-lm")(rows)
    assert batch["input_ids"].shape == (2, 6)
    assert (batch["labels"][1, 5:] == -100).all() and (batch["labels"][0] != -100).all()


def test_masked_lm_batch_targets_masked_tokens_only(pretrain_models):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lm = load_language_model(str(pretrain_models["bert"]))
    texts = [f"the red cat number {i} is a good cat" for i in range(16)] + ["dog"]
    rows = tokenize_corpus(lm.tokenizer, texts, block_size=24)
    a = LMBatcher(lm.tokenizer, "masked-lm", mlm_probability=0.3, seed=3)(rows)
    b = LMBatcher(lm.tokenizer, "masked-lm", mlm_probability=0.3, seed=3)(rows)
    assert all(torch.equal(a[k], b[k]) for k in a)  # same seed, same masks (global RNG not used)
    original = causal_lm_batch(rows, lm.tokenizer.pad_token_id)["input_ids"]  # (B, T) unmasked ids
    targets = a["labels"] != -100
    assert targets.any()
    assert (a["labels"][targets] == original[targets]).all()  # a target is the original token
    assert not targets[a["attention_mask"] == 0].any()  # padding is never a target
    specials = torch.isin(original, torch.tensor([lm.tokenizer.cls_token_id, lm.tokenizer.sep_token_id]))
    assert not targets[specials].any()
    # 80% of the targets are shown as [MASK]
    masked = a["input_ids"][targets] == lm.tokenizer.mask_token_id
    assert 0.6 < masked.float().mean().item() <= 1.0
