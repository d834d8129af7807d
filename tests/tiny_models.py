"""Tiny random models of each family MIGU must support (from_config: no downloads)."""

from __future__ import annotations

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))

VOCAB = 96


def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=64,
        num_labels=3,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return BertForSequenceClassification(cfg)


def tiny_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    cfg = T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=48,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        dropout_rate=0.0,
    )
    return T5ForConditionalGeneration(cfg)


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(cfg)


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=64,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    return GPT2LMHeadModel(cfg)


FACTORIES = {"bert": tiny_bert, "t5": tiny_t5, "llama": tiny_llama, "gpt2": tiny_gpt2}


def make_batch(family: str, batch: int = 3, length: int = 10, seed: int = 0, pad_last: int = 0) -> dict:
    """A training batch for ``family``; the last ``pad_last`` positions of row 0 are padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (batch, length), generator=g)
    attn = torch.ones(batch, length, dtype=torch.long)
    if pad_last:
        attn[0, -pad_last:] = 0
        ids[0, -pad_last:] = 0
    if family == "bert":
        return {
            "input_ids": ids,
            "attention_mask": attn,
            "labels": torch.randint(0, 3, (batch,), generator=g),
        }
    if family == "t5":
        labels = torch.randint(1, VOCAB, (batch, 4), generator=g)
        if pad_last:
            labels[0, -1] = -100
        return {"input_ids": ids, "attention_mask": attn, "labels": labels}
    labels = ids.masked_fill(attn == 0, -100)
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def build(family: str, seed: int = 0):
    torch.manual_seed(seed)
    model = FACTORIES[family]()
    model.config.attn_implementation = "eager"
    model.train()
    # Dropout is off in every config above: the tests compare runs bit for bit.
    return model
