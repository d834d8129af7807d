"""``build_report``: runs in, one HTML page and one Markdown summary out.

Sections (HTML ids), in order:

- ``runs``: every run read, its group, seed, threshold and status; runs left out and why.
- ``metrics``: per group, each metric's mean and spread over seeds.
- ``matrices``: per group, the accuracy matrix (mean over seeds) as a heatmap.
- ``per-task``: per group, each task's accuracy after each step of the sequence.
- ``seeds``: final average accuracy and backward transfer of every run, per group (box or violin).
- ``paired``: MIGU against its base and against other masks of the same size, run for run (same
  task sequence and seed), with an exact sign-flip p-value (:mod:`migu.report.paired`).
- ``threshold``: a metric against MIGU's threshold T, when the runs differ in T.
- ``similarity``: overlap of the rows each task would update, per layer and averaged (needs checkpoints).
- ``magnitudes``: output magnitudes of one layer for samples of each task (needs checkpoints).
- ``cost``: training time per step (and memory, when recorded) per group.
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migu.eval.general import probe_names
from migu.report import plots
from migu.report.collect import Group, RunRecord, group_runs, load_runs, mean_std
from migu.report.html import Image, Note, Section, Table, render_html, render_markdown
from migu.report.paired import PAIRED_METRICS, migu_comparisons

__all__ = ["SECTION_IDS", "ReportOptions", "ReportResult", "build_report"]

logger = logging.getLogger("migu")

#: Every section the report writes, in page order.
SECTION_IDS = (
    "runs",
    "metrics",
    "matrices",
    "per-task",
    "seeds",
    "paired",
    "threshold",
    "similarity",
    "magnitudes",
    "cost",
)

# (metrics.json key, label, shown in percent)
_METRICS = (
    ("final_average_accuracy", "AA", True),
    ("backward_transfer", "BWT", True),
    ("forward_transfer", "FWT", True),
    ("forgetting", "forgetting", True),
    ("learning_accuracy", "learning acc.", True),
    ("average_incremental_accuracy", "AIA", True),
    ("mean_update_fraction", "rows updated", False),
    ("final_answers_other_task_label", "other-task answers", True),
)


@dataclass
class ReportOptions:
    """What the report computes beyond reading the runs.

    Attributes:
        analysis: Compute the similarity and magnitude sections from checkpoints (loads models).
        samples: Training examples per task for the masks and magnitudes.
        threshold: T of the analysis masks; default: a MIGU run's own T, and for runs without MIGU
            the T of the first MIGU run analysed (else their config's ``migu.threshold``).
        layer: Layer for the per-layer heatmap and the magnitudes (name or part of one; default the
            middle target layer).
        max_analysis_runs: Analyse at most this many groups (one run, the lowest seed, each).
        batch_size: Examples per forward in the analysis.
        include_unfinished: Report runs that have not finished as well.
        title: Page title.
    """

    analysis: bool = True
    samples: int = 16
    threshold: float | None = None
    layer: str | None = None
    max_analysis_runs: int = 8
    batch_size: int = 8
    include_unfinished: bool = False
    title: str = "migu report"


@dataclass
class ReportResult:
    """What :func:`build_report` wrote.

    Attributes:
        html: Path of the HTML page.
        markdown: Path of the Markdown summary.
        runs: The runs reported.
        groups: Their groups.
        left_out: ``(run_dir, reason)`` of runs found but not reported.
        sections: The sections, as rendered.
    """

    html: Path
    markdown: Path
    runs: list[RunRecord]
    groups: list[Group]
    left_out: list[tuple[Path, str]]
    sections: list[Section] = field(default_factory=list)


def _fmt(value: float | None, percent: bool = False, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{100 * value:.1f}" if percent else f"{value:.{digits}f}"


def _mean_pm(values: Sequence[float], percent: bool = False, digits: int = 3) -> str:
    if not values:
        return "-"
    mean, std = mean_std(values)
    text = _fmt(mean, percent, digits)
    if std is not None:
        text += " ± " + _fmt(std, percent, digits)
    return text


def _rel(path: Path, bases: Sequence[Path]) -> str:
    for base in bases:
        try:
            rel = path.resolve().relative_to(base.resolve())
            return str(rel) if str(rel) != "." else path.name
        except ValueError:
            continue
    return str(path)


# ---------------------------------------------------------------------------------- sections
def _runs_section(groups: list[Group], left_out: list[tuple[Path, str]], bases: Sequence[Path]) -> Section:
    rows = []
    for g in groups:
        for r in g.runs:
            rows.append(
                [
                    _rel(r.run_dir, bases),
                    g.label,
                    str(r.seed),
                    "-" if r.threshold is None else f"{r.threshold:g}",
                    " → ".join(r.tasks),
                    r.metric,
                    r.status,
                    "yes" if r.has_checkpoint else "no",
                ]
            )
    items: list[Any] = [Table(["run", "group", "seed", "T", "tasks", "metric", "status", "checkpoint"], rows)]
    for path, reason in left_out:
        items.append(Note(f"left out {path}: {reason}", "warning"))
    return Section(
        "runs",
        "Runs",
        f"{sum(len(g.runs) for g in groups)} run(s) in {len(groups)} group(s). A group holds runs whose "
        "configurations differ only in the seed; its label is the method followed by the settings that "
        "vary across the runs compared (T = migu.threshold).",
        items,
    )


def _probe_metrics(groups: list[Group]) -> list[tuple[str, str, bool]]:
    """Columns for the general-ability probes any run scored (``eval.general``): accuracy before
    training, after the last task, and the forgetting between them."""
    probes = sorted({p for g in groups for r in g.runs for p in probe_names(r.metrics)})
    return [
        column
        for p in probes
        for column in (
            (f"general/{p}/acc_before", f"{p} before", True),
            (f"general/{p}/acc", f"{p} after", True),
            (f"general/{p}/forgetting", f"{p} forgetting", True),
        )
    ]


def _metrics_section(groups: list[Group]) -> Section:
    columns = [*_METRICS, *_probe_metrics(groups)]
    headers = ["group", "runs", *[label for _, label, _ in columns]]
    rows = []
    for g in groups:
        rows.append([g.label, str(len(g.runs))] + [_mean_pm(g.metric_values(k), p) for k, _, p in columns])
    per_run = []
    for g in groups:
        for r in g.runs:
            per_run.append(
                [g.label, str(r.seed)]
                + [
                    _fmt(r.metrics.get(k) if isinstance(r.metrics.get(k), int | float) else None, p)
                    for k, _, p in columns
                ]
            )
    return Section(
        "metrics",
        "Metrics",
        "Mean ± sample standard deviation over the runs (seeds) of each group. AA: final average accuracy; "
        "BWT: backward transfer; FWT: forward transfer; forgetting; learning acc.: accuracy on each task "
        "right after learning it; AIA: average incremental accuracy (all in percent, formulas in the README); "
        "rows updated: the fraction of MIGU's target rows updated per step (1 without MIGU); other-task "
        "answers: the share of the final evaluation's answers that name a label of another task of the "
        "sequence only, how a model without task labels forgets (- where the run did not record it). "
        "Runs with eval.general add, per probe, its accuracy before training, after the last task, and "
        "the forgetting between them (before - after: positive when the model lost accuracy).",
        [Table(headers, rows, "per group"), Table(["group", "seed", *headers[2:]], per_run, "per run")],
    )


def _matrices_section(groups: list[Group]) -> Section:
    items: list[Any] = []
    for g in groups:
        n = len(g.runs)
        metric = g.runs[0].metric
        title = f"{g.label} ({metric}, mean of {n} run{'s' * (n > 1)})"
        items.append(Image(plots.matrix_heatmap(g.tasks, g.mean_matrix(), title), title))
    return Section(
        "matrices",
        "Accuracy matrices",
        "R[i][j]: accuracy on task j (column) after training task i (row); the first row is before "
        "training. Below the diagonal: what was kept of earlier tasks; above it: tasks not yet trained.",
        items,
    )


def _per_task_section(groups: list[Group]) -> Section:
    by_tasks: dict[tuple[str, ...], dict[str, list[Any]]] = {}
    chance: dict[str, float] = {}
    for g in groups:  # groups of one task order share the axes
        by_tasks.setdefault(tuple(g.tasks), {})[g.label] = [r.matrix for r in g.runs]
        for r in g.runs:
            chance.update(r.chance)
    items: list[Any] = []
    for tasks, curves in by_tasks.items():
        title = " → ".join(tasks)
        items.append(Image(plots.per_task_overlay(list(tasks), curves, title, chance), title))
    return Section(
        "per-task",
        "Accuracy of each task across the sequence",
        "One panel per task, one line per group (mean over its seeds): the task's accuracy before "
        "training and after each task of the sequence; the grey band marks where the task itself is "
        "trained, the dotted line the accuracy of a uniform guess among the task's labels (runs that "
        "recorded their label counts). Forgetting shows as a line falling after the band.",
        items,
    )


def _seeds_section(groups: list[Group]) -> Section:
    values = {
        "final average accuracy (%)": {
            g.label: [100 * v for v in g.metric_values("final_average_accuracy")] for g in groups
        },
        "backward transfer (points)": {
            g.label: [100 * v for v in g.metric_values("backward_transfer")] for g in groups
        },
    }
    seeds = max(len(g.runs) for g in groups)
    if seeds < 2:  # a spread of single points says nothing, and its auto-zoomed axes mislead
        items: list[Any] = [
            Note(
                "Every group has a single run, so there is no spread to draw: rerun with other seeds "
                "(`migu sweep --grid seed=[0,1,2]`)."
            )
        ]
    else:
        items = [Image(plots.box_over_seeds(values, "spread over seeds (%)"), "spread over seeds")]
    return Section(
        "seeds",
        "Spread over seeds",
        "Each point is one run; boxes (violins from 4 runs per group on) show how much a method's result "
        "depends on the seed (the paper's Figs. 6-10).",
        items,
    )


def _paired_section(runs: list[RunRecord]) -> Section:
    comparisons = migu_comparisons(runs)
    headers = ["A - B", "pairs"]
    for _, label in PAIRED_METRICS:
        headers += [f"{label} A - B (points)", f"{label}: A higher / equal / lower", f"{label} p"]
    rows = []
    items: list[Any] = []
    for c in comparisons:
        row = [f"{c.a} - {c.b}", str(len(c.pairs))]
        for key, _ in PAIRED_METRICS:
            s = c.summary(key)
            row += (
                ["-", "-", "-"]
                if s is None
                else [s.cell(), f"{s.better} / {s.equal} / {s.worse}", f"{s.p:.3f}"]
            )
        rows.append(row)
        if c.repeated:
            items.append(
                Note(
                    f"{c.a} - {c.b}: {len(c.repeated)} (sequence, seed) point(s) ran more than once; "
                    "the first run read is used.",
                    "warning",
                )
            )
    if rows:
        items.insert(0, Table(headers, rows))
    else:
        items.append(
            Note(
                "No run with MIGU has a run without it (or with another mask criterion) on the same task "
                "sequence and seed and otherwise the same settings: run both, e.g. "
                "`migu sweep --grid seed=[0,1,2] --variants FT,FT+MIGU,FT+random`."
            )
        )
    return Section(
        "paired",
        "Paired comparisons",
        "Each method with MIGU against the same method without it, and MIGU's output-magnitude mask "
        "against a mask of the same size chosen otherwise (random, weight or gradient norm), run for run: "
        "a pair is two runs with the same task sequence and seed (same training sample, initial weights "
        "and test items), pooled over the task sequences. Mean ± sample std of the differences A - B in "
        "points, and the exact two-sided sign-flip p-value of their mean (with n pairs it cannot go below "
        "2 / 2^n: at least 6 pairs for p < 0.05). A gain is larger than the seed spread when p is small, "
        "not when the means of two groups differ.",
        items,
    )


def _series_key(g: Group) -> tuple[Any, ...]:
    return (g.method, *sorted((k, v) for k, v in g.settings.items() if k != "migu.threshold"))


def _threshold_section(groups: list[Group]) -> Section:
    migu_groups = [g for g in groups if g.threshold is not None]
    by_series: dict[tuple[Any, ...], list[Group]] = {}
    for g in migu_groups:
        by_series.setdefault(_series_key(g), []).append(g)
    curves = {k: gs for k, gs in by_series.items() if len({g.threshold for g in gs}) > 1}
    about = (
        "A metric against MIGU's threshold T (the fraction of each layer's rows whose gradient is masked; "
        "the paper's Figs. 4 and 13), mean ± std over seeds; runs without MIGU drawn as dashed lines."
    )
    if not curves:
        ts = sorted({g.threshold for g in migu_groups})
        why = f"all MIGU runs share T = {', '.join(f'{t:g}' for t in ts)}" if ts else "no run uses MIGU"
        return Section(
            "threshold",
            "Threshold",
            about,
            [
                Note(
                    f"No curve: {why}. Sweep it with `migu sweep CONFIG --grid migu.threshold=[0.1,0.3,0.5,0.7,0.9]`."
                )
            ],
        )
    items: list[Any] = []
    rows = []
    for key, label, _ in _METRICS[:2]:
        series = {}
        for gs in curves.values():
            name = gs[0].label.replace(f"T={gs[0].threshold:g}", "").replace("  ", " ").strip()
            pts = []
            for g in gs:
                vals = g.metric_values(key)
                if vals:
                    mean, std = mean_std(vals)
                    pts.append((float(g.threshold), 100 * mean, None if std is None else 100 * std))
            series[name] = pts
        baselines = {}
        for g in groups:
            vals = g.metric_values(key)
            if g.threshold is None and vals:
                baselines[g.label] = 100 * mean_std(vals)[0]
        items.append(Image(plots.threshold_curve(series, baselines, f"{label} (%)"), f"{label} against T"))
    for gs in curves.values():
        for g in sorted(gs, key=lambda g: g.threshold):
            rows.append(
                [g.label, f"{g.threshold:g}", str(len(g.runs))]
                + [_mean_pm(g.metric_values(k), p) for k, _, p in _METRICS[:2]]
            )
    items.append(Table(["group", "T", "runs", "AA", "BWT"], rows))
    return Section("threshold", "Threshold", about, items)


def _pick_analysis_runs(groups: list[Group], limit: int) -> tuple[list[tuple[Group, RunRecord]], list[str]]:
    chosen, notes = [], []
    for g in groups:
        run = next((r for r in g.runs if r.has_checkpoint and r.finished), None)
        if run is None:
            notes.append(f"{g.label}: no finished run with a checkpoint; not analysed.")
        elif len(chosen) >= limit:
            notes.append(f"{g.label}: not analysed (at most {limit} groups; raise --max-analysis-runs).")
        else:
            chosen.append((g, run))
    return chosen, notes


def _analyse(
    groups: list[Group], opts: ReportOptions, progress: Callable[[str], None]
) -> tuple[list[Any], list[str]]:
    from migu.report.analysis import analyze_run

    chosen, notes = _pick_analysis_runs(groups, opts.max_analysis_runs)
    default_t = opts.threshold
    if default_t is None:
        default_t = next((g.threshold for g, _ in chosen if g.threshold is not None), None)
    results = []
    for g, run in chosen:
        t = (
            opts.threshold
            if opts.threshold is not None
            else (run.threshold if run.threshold is not None else default_t)
        )
        progress(f"analysing {run.run_dir} ({opts.samples} samples per task)")
        try:
            a = analyze_run(
                run.run_dir, samples=opts.samples, threshold=t, layer=opts.layer, batch_size=opts.batch_size
            )
        except ValueError as err:
            if opts.layer is not None and "matches no" in str(err):
                raise  # a bad --layer is the user's to fix, not a note
            notes.append(f"{g.label}: could not analyse {run.run_dir}: {err}")
            continue
        except Exception as err:  # one broken run (moved model, missing data) must not sink the report
            notes.append(f"{g.label}: could not analyse {run.run_dir}: {type(err).__name__}: {err}")
            continue
        a.label = f"{g.label} (seed {run.seed})"
        results.append(a)
    return results, notes


def _similarity_section(analyses: list[Any], notes: list[str], opts: ReportOptions) -> Section:
    about = (
        f"For each task, MIGU's masks from its first {opts.samples} training examples on the run's final "
        "model: keep_i = the rows of a layer that task i would update. Overlap ratio of tasks i and j in a "
        "layer = |keep_i ∩ keep_j| / |keep_i| (1: the same rows; 1 - T: as random masks). Heatmaps: mean over "
        "layers, and one layer; lines: per layer, the mean overlap between different tasks (the paper's "
        "Figs. 5, 15, 16). A run without MIGU (FT) next to one with MIGU compares the two models."
    )
    items: list[Any] = []
    if not opts.analysis:
        items.append(Note("Not computed (--no-analysis)."))
    for a in analyses:
        title = f"{a.label}: mean over {len(a.layers)} layers, T={a.threshold:g}"
        items.append(Image(plots.overlap_heatmap(a.tasks, a.mean_overlap(), title), title))
        li = a.layers.index(a.layer)
        title = f"{a.label}: {a.layer}"
        items.append(Image(plots.overlap_heatmap(a.tasks, a.overlap[li], title), title))
    multi = [a for a in analyses if len(a.tasks) > 1]
    if multi:
        curves = {a.label: list(a.off_diagonal_by_layer()) for a in multi}
        chance = {a.label: 1.0 - a.threshold for a in multi}
        items.append(Image(plots.layer_overlap_lines(multi[0].layers, curves, chance), "overlap per layer"))
        rows = [
            [
                a.label,
                f"{a.threshold:g}",
                str(min(a.samples.values())),
                str(len(a.layers)),
                _fmt(float(a.off_diagonal_by_layer().mean())),
                _fmt(1.0 - a.threshold),
            ]
            for a in multi
        ]
        items.append(
            Table(["run", "T", "samples/task", "layers", "mean overlap between tasks", "random masks"], rows)
        )
    items.extend(Note(n, "warning") for n in notes)
    if opts.analysis and not analyses and not notes:
        items.append(Note("No run to analyse.", "warning"))
    return Section("similarity", "Task similarity (mask overlap)", about, items)


def _magnitudes_section(analyses: list[Any], notes: list[str], opts: ReportOptions) -> Section:
    about = (
        f"L1-normalized output magnitude of each unit of one layer, averaged over {opts.samples} training "
        "examples per task, on the run's final model (the paper's Figs. 1 and 17): tasks that peak on "
        "different units update different rows under MIGU. Choose the layer with --layer."
    )
    items: list[Any] = []
    if not opts.analysis:
        items.append(Note("Not computed (--no-analysis)."))
    for a in analyses:
        items.append(
            Image(plots.magnitude_distribution(a.source, a.magnitudes, a.label), f"{a.label}: {a.source}")
        )
    items.extend(Note(n, "warning") for n in notes)
    return Section("magnitudes", "Output magnitudes per task", about, items)


def _baseline(g: Group, groups: list[Group]) -> Group | None:
    if g.threshold is None:
        return None
    want = g.method.replace("+MIGU", "")
    others = {k: v for k, v in g.settings.items() if not k.startswith("migu.")}
    for b in groups:
        if (
            b.threshold is None
            and b.method == want
            and {k: v for k, v in b.settings.items() if not k.startswith("migu.")} == others
        ):
            return b
    return None


def _cost_section(groups: list[Group]) -> Section:
    mem_keys = sorted(
        {k for g in groups for r in g.runs for k in r.metrics if "memory" in k or k.endswith("_mem")}
    )
    headers = ["group", "runs", "optimizer steps", "train seconds", "seconds / step", "vs. without MIGU"]
    headers += mem_keys
    rows = []
    panels: dict[str, dict[str, tuple[float, float | None]]] = {"seconds per optimizer step": {}}
    for k in mem_keys:
        panels[k] = {}
    for g in groups:
        sps = g.metric_values("seconds_per_step")
        rel = "-"
        base = _baseline(g, groups)
        if base is not None and sps and base.metric_values("seconds_per_step"):
            ratio = mean_std(sps)[0] / mean_std(base.metric_values("seconds_per_step"))[0]
            rel = f"{100 * (ratio - 1):+.1f}% vs {base.label}"
        row = [
            g.label,
            str(len(g.runs)),
            _mean_pm(g.metric_values("optimizer_steps"), digits=0),
            _mean_pm(g.metric_values("train_seconds"), digits=1),
            _mean_pm(sps, digits=4),
            rel,
        ]
        row += [_mean_pm(g.metric_values(k), digits=1) for k in mem_keys]
        rows.append(row)
        if sps:
            panels["seconds per optimizer step"][g.label] = mean_std(sps)
        for k in mem_keys:
            if g.metric_values(k):
                panels[k][g.label] = mean_std(g.metric_values(k))
    items: list[Any] = []
    panels = {k: v for k, v in panels.items() if v}
    if panels:
        items.append(Image(plots.cost_bars(panels), "time and memory"))
    items.append(Table(headers, rows))
    if not mem_keys:
        items.append(Note("No memory figure recorded in these runs' metrics.json (only time is shown)."))
    items.append(
        Note(
            "Times are wall-clock seconds of the training steps only (evaluation and checkpoints excluded); "
            "compare them only between runs on the same machine."
        )
    )
    return Section(
        "cost",
        "Time and memory",
        "Training cost per group, mean ± std over seeds, and the overhead of MIGU against the same method "
        "without it (the paper's Table 10).",
        items,
    )


# ---------------------------------------------------------------------------------- entry point
def build_report(
    paths: Iterable[str | Path],
    out_dir: str | Path | None = None,
    options: ReportOptions | None = None,
    *,
    progress: Callable[[str], None] | None = None,
) -> ReportResult:
    """Read runs, build every section, write ``report.html`` and ``report.md``.

    Args:
        paths: Run directories, or folders above them (variant parents, sweep folders).
        out_dir: Where to write; default: the single path given, else the current directory.
        options: What to compute (:class:`ReportOptions`).
        progress: Called with a line of text at each slow step (default: the ``migu`` logger).

    Returns:
        The :class:`ReportResult`.

    Raises:
        migu.report.collect.NotARunDir: a path holds no run.
        ValueError: ``options.layer`` matches no layer.
    """
    opts = options or ReportOptions()
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("build_report needs at least one run directory.")
    if opts.analysis and opts.samples < 1:
        raise ValueError(f"samples={opts.samples}: the analysis needs at least one example per task.")
    say = progress or logger.info
    if out_dir is None:
        out_dir = paths[0] if len(paths) == 1 else Path.cwd()
    out_dir = Path(out_dir)
    runs, left_out = load_runs(paths, include_unfinished=opts.include_unfinished)
    groups = group_runs(runs)
    say(f"{len(runs)} run(s), {len(groups)} group(s)")
    analyses: list[Any] = []
    notes: list[str] = []
    if opts.analysis:
        analyses, notes = _analyse(groups, opts, say)
    sections = [
        _runs_section(groups, left_out, paths),
        _metrics_section(groups),
        _matrices_section(groups),
        _per_task_section(groups),
        _seeds_section(groups),
        _paired_section(runs),
        _threshold_section(groups),
        _similarity_section(analyses, notes, opts),
        _magnitudes_section(analyses, notes, opts),
        _cost_section(groups),
    ]
    assert [s.id for s in sections] == list(SECTION_IDS)
    import migu

    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    subtitle = (
        f"{len(runs)} run(s) from {', '.join(str(p) for p in paths)} · migu {migu.__version__} · {when}"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out_dir / "report.html", out_dir / "report.md"
    from migu.engine.rundir import atomic_write_text

    atomic_write_text(html_path, render_html(opts.title, subtitle, sections))
    atomic_write_text(md_path, render_markdown(opts.title, subtitle, sections, html_path.name))
    return ReportResult(html_path, md_path, runs, groups, left_out, sections)
