"""The transformers Trainer callback, with gradient accumulation, against the reference masks."""

from __future__ import annotations

import torch
from reference import InputRecorder, linear_out, magnitude, reference_keep
from tiny_models import build, make_batch
from torch.utils.data import Dataset
from transformers import Trainer, TrainingArguments

import migu
from migu.integrations import MiguCallback


class _Rows(Dataset):
    def __init__(self, batch: dict):
        self.batch = batch

    def __len__(self) -> int:
        return self.batch["input_ids"].shape[0]

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.batch.items()}


def test_trainer_callback_masks_once_per_accumulated_step(tmp_path):
    model = build("llama")
    batch = make_batch("llama", batch=4, seed=3)
    w0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    callback = MiguCallback(migu.MiguConfig(threshold=0.7))
    args = TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        max_steps=1,
        learning_rate=0.5,
        optim="sgd",
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=0.0,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        seed=0,
        dataloader_num_workers=0,
    )
    modules = {n: m for n, m in model.named_modules() if n.endswith(("_proj",))}
    recorder = InputRecorder(modules)
    trainer = Trainer(model=model, args=args, train_dataset=_Rows(batch), callbacks=[callback])
    trainer.train()
    recorder.remove()
    handle = callback.handle
    assert handle.steps == 1
    assert not handle._hooks  # removed at on_train_end
    for name, module in modules.items():
        assert len(recorder.inputs[name]) == 2  # two micro-batches, one mask
        ys = [linear_out(x, w0[name + ".weight"], None) for x in recorder.inputs[name]]
        keep = reference_keep(magnitude(ys), 0.7)
        assert torch.equal(handle.masks[name], keep), name
        w1 = module.weight.detach()
        assert torch.equal(w1[~keep], w0[name + ".weight"][~keep])
        assert (w1[keep] != w0[name + ".weight"][keep]).any(1).all()
