"""Why the task-label-free head collapses: the encoder's features after the second task, per protocol.

docs/results.md reports that with ``eval.label_space=all`` (one head over every label of the
sequence) all-MiniLM-L6-v2 answers every test item with one label of the newest task after the
second task, while the options-restricted head keeps learning. This script trains FT on the first
``--tasks`` of order 1 with the small preset under each protocol, then reads the trained model
back (:func:`migu.engine.trained.load_trained`) and prints, for the pretrained model and for each
trained one, on every task's fixed test items:

- ``distinct``: how many different labels the model answers (1 = a constant answer);
- ``saturated``: the share of the pooled feature's entries with ``|x| > 0.99`` (for the [CLS] pooler: tanh units saturated);
- ``feature std``: the spread of the pooled feature across test items (mean over units of the
  standard deviation over items), the thing a constant answer needs to vanish;
- ``logit std / gap``: the spread of the chosen label's logit across items against the gap
  between the top label and the runner-up (a constant answer has a gap far above the spread).

    python benchmarks/head_collapse.py --out runs/head-collapse            # dbpedia -> amazon
    python benchmarks/head_collapse.py --out runs/head-collapse --pooling mean --tasks dbpedia,amazon,yahoo
    python benchmarks/head_collapse.py --out runs/head-collapse --method lora

Runs already in ``--out`` are reused (delete the folder to train again).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from migu.data.task import Task  # noqa: E402
from migu.engine import runner  # noqa: E402
from migu.engine.config import load_run_config, parse_overrides  # noqa: E402
from migu.engine.families import EncoderFamily  # noqa: E402
from migu.engine.runner import run  # noqa: E402
from migu.engine.trained import load_trained  # noqa: E402

PRESET = Path(__file__).resolve().parents[1] / "src/migu/presets/cpu-standard-minilm-controls.yaml"


@torch.no_grad()
def feature_stats(model: torch.nn.Module, family: EncoderFamily, tasks: Sequence[Task]) -> list[dict]:
    """Per task: distinct answers, tanh saturation, feature spread and logit spread/gap on its test items."""
    captured: dict[str, torch.Tensor] = {}
    pooler = (
        model.get_submodule("bert.pooler")
        if hasattr(model, "bert")
        else model.get_submodule("base_model.model.bert.pooler")
    )
    hook = pooler.register_forward_hook(lambda m, i, o: captured.__setitem__("pooled", o.detach()))
    try:
        rows = []
        model.eval()
        for task in tasks:
            records = list(task.test)
            answers = family.predict(model, task, records, "classify")
            pooled = captured["pooled"].float()  # (N, hidden): what the head read in the last call
            batch = {
                k: v.to(pooled.device) for k, v in family.encode_prompts([(task, r) for r in records]).items()
            }
            logits = model(**batch).logits.float()  # (N, n_union): the full head, no option mask
            top2 = logits.topk(2, dim=-1).values  # (N, 2)
            gold = torch.tensor([family.label_ids[r["label"]] for r in records], device=logits.device)  # (N,)
            own = torch.tensor([family.label_ids[lab] for lab in task.labels], device=logits.device)
            restricted = torch.full_like(logits, float("-inf")).index_copy(
                1, own, logits[:, own]
            )  # (N, n_union)
            rows.append(
                {
                    "task": task.name,
                    "distinct": len(set(answers)),
                    "saturated": (pooled.abs() > 0.99).float().mean().item(),
                    "feature_std": pooled.std(dim=0).mean().item(),
                    "logit_std": top2[:, 0].std().item(),
                    "gap": (top2[:, 0] - top2[:, 1]).mean().item(),
                    "acc_all": (logits.argmax(-1) == gold).float().mean().item(),
                    "acc_options": (restricted.argmax(-1) == gold).float().mean().item(),
                }
            )
        return rows
    finally:
        hook.remove()


class MeanPooler(torch.nn.Module):
    """The mean of the token states over the attention mask, in place of BERT's [CLS] pooler.

    This is how all-MiniLM-L6-v2 was trained to embed a sentence (sentence-transformers' mean
    pooling). The pooler's dense layer is kept, unused, so that checkpoints keep their keys.
    """

    def __init__(self, pooler: torch.nn.Module) -> None:
        super().__init__()
        self.dense = pooler.dense
        self.mask: torch.Tensor | None = None  # (B, L), set by a pre-hook on the encoder per call

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            raise RuntimeError("MeanPooler needs the attention mask: call the model with attention_mask=...")
        m = self.mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, L, 1)
        return (hidden_states * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, H)


def use_mean_pooling(model: torch.nn.Module) -> torch.nn.Module:
    """Swap the [CLS] pooler of a ``BertForSequenceClassification`` for :class:`MeanPooler`."""
    pooler = MeanPooler(model.bert.pooler)
    model.bert.pooler = pooler

    def stash(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        pooler.mask = kwargs.get("attention_mask")

    model.bert.register_forward_pre_hook(stash, with_kwargs=True)
    return model


def _mean_pooled_loader(load):
    """``load_model`` whose encoder models come back with :func:`use_mean_pooling` applied."""

    def load_model(*args, **kwargs):
        loaded = load(*args, **kwargs)
        if loaded.family == "encoder":
            use_mean_pooling(loaded.model)
        return loaded

    return load_model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for the runs (reused when present)")
    ap.add_argument("--tasks", default="dbpedia,amazon", help="comma-separated task names, in order")
    ap.add_argument("--method", choices=("ft", "lora"), default="ft")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--label-spaces", default="all,options", help="protocols to train, comma-separated")
    ap.add_argument(
        "--pooling",
        choices=("cls", "mean"),
        default="cls",
        help="what the head reads: BERT's [CLS] pooler (transformers' default) or the mean token state",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config override, e.g. train.lr=3e-5",
    )
    args = ap.parse_args()

    common = [f"data.tasks=[{args.tasks}]", "data.order=null", f"seed={args.seed}"]
    if args.method == "lora":
        common += ["method.name=lora", "train.lr=1e-3"]
    common += args.set
    suffix = "".join(f"-{o.replace('=', '')}" for o in args.set) + ("-mean" if args.pooling == "mean" else "")
    if args.pooling == "mean":  # every model the engine loads in this process, training and read-back
        runner.load_model = _mean_pooled_loader(runner.load_model)
    print(
        f"{args.method} on {args.tasks} (small preset, seed {args.seed}, overrides {args.set or 'none'}, "
        f"{args.pooling} pooling)\n"
    )
    header = (
        f"{'model':<22} {'task':<10} {'distinct':>8} {'saturated':>9} {'feature std':>11} {'logit std':>9} "
        f"{'gap':>6} {'acc all':>7} {'acc options':>11}"
    )
    print(header)
    print("-" * len(header))
    for i, label_space in enumerate(args.label_spaces.split(",")):
        cfg = load_run_config(PRESET).with_overrides(
            parse_overrides([*common, f"eval.label_space={label_space}", "migu.enabled=false"])
        )
        run_dir = (
            args.out / f"{args.method}-{label_space}-{args.tasks.replace(',', '+')}-seed{args.seed}{suffix}"
        )
        if not (run_dir / "state.json").exists():
            run(cfg, run_dir, show_progress=True)
        with load_trained(run_dir) as trained:
            if i == 0:  # the pretrained model, read through the same (untrained) head shape
                from migu.engine.runner import _Run

                fresh = _Run(cfg, args.out / "pretrained", False, labels=list(trained.family.label_ids))
                try:
                    fresh.start(resume=False)
                    for row in feature_stats(fresh.unwrapped, fresh.family, fresh.tasks):
                        _print("pretrained", row)
                finally:
                    fresh.close()
            for row in feature_stats(trained.unwrapped, trained.family, trained.tasks):
                _print(f"{args.method}, {label_space}", row)
    return 0


def _print(name: str, row: dict) -> None:
    print(
        f"{name:<22} {row['task']:<10} {row['distinct']:>8} {row['saturated']:>9.3f} "
        f"{row['feature_std']:>11.4f} {row['logit_std']:>9.3f} {row['gap']:>6.2f} "
        f"{100 * row['acc_all']:>7.1f} {100 * row['acc_options']:>11.1f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
