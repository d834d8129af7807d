"""Task similarity through MIGU's masks, and output magnitudes per task, on a run's trained model.

For each task, ``samples`` training examples of that task go through the model in training-style
forwards (gradients enabled, dropout off, nothing updated); MIGU's hooks add up each target
layer's output magnitudes over them, and the mask is taken as in one training step of threshold
``T``: ``keep_i`` = the rows of each layer that task ``i`` would update.

Overlap ratio of tasks i and j in one layer (the paper's Fig. 5, 15, 16: overlap of the updated
parameters)::

    overlap_l(i, j) = |keep_i ∩ keep_j| / |keep_i|

With ``T`` fixed every mask keeps the same number of rows, so the ratio is symmetric, 1 for identical
masks, and ``1 - T`` in expectation for masks drawn at random. The tasks x tasks matrix shown per run
is the mean of ``overlap_l`` over the layers (every layer counts once, whatever its width).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "RunAnalysis",
    "analyze_run",
    "overlap_matrices",
    "overlap_ratio",
    "pick_layer",
    "task_masks_and_magnitudes",
]


def overlap_ratio(keep_a: torch.Tensor, keep_b: torch.Tensor) -> float:
    """``|keep_a ∩ keep_b| / |keep_a|`` for two bool masks of one layer (True = row updated).

    Args:
        keep_a: ``(d_out,)`` bool.
        keep_b: ``(d_out,)`` bool, same shape.

    Returns:
        The ratio in ``[0, 1]``; 1.0 when ``keep_a`` keeps nothing (nothing of it left out).

    Raises:
        ValueError: the masks differ in shape.
    """
    if keep_a.shape != keep_b.shape:
        raise ValueError(f"masks of different shapes: {tuple(keep_a.shape)} and {tuple(keep_b.shape)}")
    a, b = keep_a.bool(), keep_b.bool()
    n = int(a.sum())
    return 1.0 if n == 0 else int((a & b).sum()) / n


def overlap_matrices(
    masks: Mapping[str, Mapping[str, torch.Tensor]], layers: Sequence[str] | None = None
) -> tuple[list[str], list[str], np.ndarray]:
    """Per layer, the tasks x tasks matrix of :func:`overlap_ratio`.

    Args:
        masks: Task name -> (layer name -> ``(d_out,)`` bool keep mask).
        layers: Layers to use, in this order; default: those every task has, in the first task's order.

    Returns:
        ``(tasks, layers, overlap)`` with ``overlap[l, i, j] = overlap_ratio(masks[i][l], masks[j][l])``,
        shape ``(len(layers), len(tasks), len(tasks))``.

    Raises:
        ValueError: no task, or no layer common to all tasks.
    """
    tasks = list(masks)
    if not tasks:
        raise ValueError("overlap_matrices needs the masks of at least one task.")
    if layers is None:
        layers = [name for name in masks[tasks[0]] if all(name in masks[t] for t in tasks)]
    layers = list(layers)
    if not layers:
        raise ValueError("The tasks' masks have no layer in common.")
    out = np.zeros((len(layers), len(tasks), len(tasks)))  # (L, n, n)
    for li, layer in enumerate(layers):
        keep = torch.stack([masks[t][layer].bool().cpu() for t in tasks]).float()  # (n, d_out)
        inter = keep @ keep.T  # (n, n): |keep_i ∩ keep_j|
        size = keep.sum(dim=1, keepdim=True)  # (n, 1): |keep_i|
        out[li] = torch.where(size > 0, inter / size.clamp(min=1), torch.ones_like(inter)).numpy()
    return tasks, layers, out


def pick_layer(names: Sequence[str], want: str | None) -> str:
    """The layer named by ``want`` (its full name, or the first name containing it), else the middle one.

    Raises:
        ValueError: ``want`` matches no name (the message lists a few), or no names.
    """
    if not names:
        raise ValueError("no layer to pick from")
    if want is None:
        return names[len(names) // 2]
    if want in names:
        return want
    for name in names:
        if want in name:
            return name
    shown = ", ".join(list(names)[:8])
    raise ValueError(f"layer {want!r} matches no MIGU target layer; some are: {shown}, ...")


def task_masks_and_magnitudes(
    model: torch.nn.Module,
    family: Any,
    tasks: Sequence[Any],
    migu_config: Any,
    *,
    samples: int,
    batch_size: int,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, dict[str, torch.Tensor]], dict[str, int]]:
    """MIGU's keep masks and output magnitudes of each task, from its first ``samples`` training examples.

    Args:
        model: The model (left as it was: hooks removed, parameters untouched, mode restored).
        family: The run's :class:`migu.engine.families.Family` (batches and loss).
        tasks: :class:`migu.data.task.Task` objects.
        migu_config: A :class:`migu.MiguConfig`; its threshold decides the masks.
        samples: Training examples per task.
        batch_size: Examples per forward.
        device: Where the batches go (the model's device).

    Returns:
        ``(masks, magnitudes, counts)``: task -> unit name -> ``(d_out,)`` bool keep mask; task ->
        source module name -> ``(d_out,)`` summed output magnitudes; task -> examples used.
    """
    from migu.core.handle import attach

    was_training = model.training
    model.eval()  # dropout off: the statistic of the weights, not of a dropout draw
    handle = attach(model, migu_config)
    masks: dict[str, dict[str, torch.Tensor]] = {}
    magnitudes: dict[str, dict[str, torch.Tensor]] = {}
    counts: dict[str, int] = {}
    try:
        for task in tasks:
            records = list(task.train[:samples])
            counts[task.name] = len(records)
            handle.reset()
            for i in range(0, len(records), batch_size):
                batch = family.training_batch([(task, r) for r in records[i : i + batch_size]])
                batch = {k: v.to(device) for k, v in batch.items()}
                # MIGU records training-style forwards only (gradients enabled); no backward follows,
                # so apply_masks below only computes the masks.
                with torch.enable_grad():
                    family.loss(model, batch)
            handle.apply_masks()
            masks[task.name] = {k: v.detach().cpu() for k, v in handle.masks.items()}
            magnitudes[task.name] = {k: v.detach().float().cpu() for k, v in handle.magnitudes.items()}
    finally:
        handle.remove()
        model.train(was_training)
    return masks, magnitudes, counts


@dataclass
class RunAnalysis:
    """Mask overlap and magnitudes of one run's final model.

    Attributes:
        run_dir: The run analysed.
        tasks: Task names.
        threshold: The T of the masks.
        samples: Examples used per task.
        layers: Unit (weight) names, in model order.
        overlap: ``(len(layers), n_tasks, n_tasks)`` overlap ratios.
        layer: The layer chosen for the per-layer heatmap.
        source: The layer whose output magnitudes are kept.
        magnitudes: Task -> ``(d_out,)`` L1-normalized output magnitudes of ``source``.
        label: The run's group label (set by the report).
    """

    run_dir: Path
    tasks: list[str]
    threshold: float
    samples: dict[str, int]
    layers: list[str]
    overlap: np.ndarray
    layer: str
    source: str
    magnitudes: dict[str, np.ndarray] = field(default_factory=dict)
    label: str = ""

    def mean_overlap(self) -> np.ndarray:
        """``(n_tasks, n_tasks)``: the overlap averaged over layers."""
        return self.overlap.mean(axis=0)

    def off_diagonal_by_layer(self) -> np.ndarray:
        """``(n_layers,)``: per layer, the mean overlap over pairs of different tasks (NaN for one task)."""
        n = len(self.tasks)
        if n < 2:
            return np.full(len(self.layers), np.nan)
        off = ~np.eye(n, dtype=bool)
        return self.overlap[:, off].mean(axis=1)


def analyze_run(
    run_dir: str | Path,
    *,
    samples: int = 16,
    threshold: float | None = None,
    layer: str | None = None,
    batch_size: int = 8,
) -> RunAnalysis:
    """Load a run's final checkpoint and compute its task masks, overlaps and magnitudes.

    The model is rebuilt as ``migu eval`` does (the run's config, its method's structure at the end
    of the sequence, then the checkpoint). The masks use the run's own MIGU settings (``targets``,
    ``normalize``, ``ignore_padding``), with its ``migu.threshold`` unless ``threshold`` is given;
    that applies to runs trained without MIGU too (their config still holds a threshold).

    Args:
        run_dir: A finished run directory with ``checkpoint/``.
        samples: Training examples per task (the cost: one forward per ``batch_size`` of them).
        threshold: T of the masks; default: the run's ``migu.threshold``.
        layer: Layer for the per-layer heatmap and the magnitudes (a name or part of one);
            default: the middle target layer.
        batch_size: Examples per forward.

    Returns:
        The :class:`RunAnalysis`.

    Raises:
        FileNotFoundError: no config or no checkpoint.
        ValueError: ``samples < 1``, or ``layer`` matches no target layer.
    """
    from migu.engine.trained import load_trained

    if samples < 1:
        raise ValueError(f"samples={samples}: at least one example per task is needed.")
    run_dir = Path(run_dir)
    with load_trained(run_dir, workdir="report") as r:
        mcfg = dataclasses.replace(
            r.cfg.migu.to_migu_config(),
            threshold=r.cfg.migu.threshold if threshold is None else threshold,
            mode="grad",
            criterion="output",
            clusters=0,
            sync_distributed=False,
        )
        masks, mags, counts = task_masks_and_magnitudes(
            r.unwrapped,
            r.family,
            r.tasks,
            mcfg,
            samples=samples,
            batch_size=batch_size,
            device=r.accelerator.device,
        )
    tasks, layers, overlap = overlap_matrices(masks)
    chosen = pick_layer(layers, layer)
    first = mags[tasks[0]]
    sources = [s for s in first if all(s in mags[t] for t in tasks)]
    source = pick_layer(sources, layer)
    magnitudes = {}
    for t in tasks:
        m = mags[t][source].numpy()  # (d_out,)
        magnitudes[t] = m / max(float(np.abs(m).sum()), 1e-12)  # L1-normalized, as the paper's Fig. 1
    return RunAnalysis(
        run_dir=run_dir,
        tasks=tasks,
        threshold=float(mcfg.threshold),
        samples=counts,
        layers=layers,
        overlap=overlap,
        layer=chosen,
        source=source,
        magnitudes=magnitudes,
    )
