"""Regenerate every table of docs/results.md from the raw run files under results/.

docs/results.md marks each generated table with a pair of HTML comments::

    <!-- table: controls-aa -->
    ...  (replaced by this script)
    <!-- end table -->

and this script rewrites what is between them from the runs' ``config.yaml``, ``matrix.json`` and
``metrics.json`` (checkpoints and predictions are not needed). Prose around the tables is written by
hand and says what the tables show; ``--check`` fails when a table is out of date with results/.

    .venv/bin/python benchmarks/results_doc.py           # rewrite the tables in docs/results.md
    .venv/bin/python benchmarks/results_doc.py --check   # exit 1 if a table differs (a test runs this)

Statistics: each cell is the mean ± sample standard deviation over the runs it covers. Paired
comparisons match two variants on the same (task order, seed): same training sample and order, same
initial weights, same test items (test samples do not depend on the seed). Their p-value is the exact
two-sided sign-flip permutation test of the mean paired difference (all 2^n sign patterns; no
distributional assumption), which with n pairs cannot go below 2 / 2^n.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import math
import re
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from order_table import mean_std_cell, per_task_table, table  # noqa: E402

from migu.engine.rundir import atomic_write_bytes, atomic_write_text  # noqa: E402
from migu.eval.general import probe_names  # noqa: E402
from migu.eval.metrics import sign_flip_p  # noqa: E402
from migu.report.collect import NotARunDir, RunRecord, flatten, load_runs, mean_std  # noqa: E402
from migu.report.paired import diff_cell, pair_key  # noqa: E402

DOC = ROOT / "docs" / "results.md"
RESULTS = ROOT / "results"
_BLOCK = re.compile(r"(<!-- table: (?P<id>[\w-]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


# ------------------------------------------------------------------------------------------ statistics
def paired_table(runs: list[RunRecord], pairs: Sequence[tuple[str, str]], metric: str, title: str) -> str:
    """One row per (A, B): the paired differences A - B of ``metric`` over matching (order, seed) runs."""
    by_variant: dict[str, dict[tuple, float]] = defaultdict(dict)
    for run in runs:
        value = run.metrics.get(metric)
        if run.variant is not None and value is not None:
            by_variant[run.variant][pair_key(run)] = 100.0 * float(value)
    lines = [
        f"{title}: paired differences A - B in points, matched on (task order, seed)",
        "",
        "| A - B | pairs | mean ± std | A better / equal / worse | p (sign-flip) | differences |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for a, b in pairs:
        keys = sorted(set(by_variant[a]) & set(by_variant[b]), key=str)
        diffs = [by_variant[a][k] - by_variant[b][k] for k in keys]
        if diffs:
            lines.append(f"| {a} - {b} | {_diff_cells(diffs)} |")
    return "\n".join(lines)


def _diff_cells(diffs: Sequence[float]) -> str:
    """The cells of one paired row: pairs | mean ± std | higher / equal / lower | p | each difference."""
    higher, equal = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs)
    listed = ", ".join(f"{d:+.1f}" for d in diffs)
    return (
        f"{len(diffs)} | {diff_cell(diffs)} | {higher} / {equal} / {len(diffs) - higher - equal} "
        f"| {sign_flip_p(diffs):.3f} | {listed}"
    )


def seed_spread_table(runs: list[RunRecord], metric: str, title: str) -> str:
    """Per variant: the standard deviation over seeds within one task order, averaged over orders."""
    groups: dict[str, dict[object, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        value = run.metrics.get(metric)
        if run.variant is not None and value is not None:
            groups[run.variant][flatten(run.config).get("data.order")].append(100.0 * float(value))
    lines = [
        f"{title}: spread over seeds (std over seeds within an order, mean over orders), points",
        "",
        "| variant | seed std | orders |",
        "|---|---:|---:|",
    ]
    for variant, by_order in groups.items():
        stds = [statistics.stdev(v) for v in by_order.values() if len(v) >= 2]
        if stds:
            lines.append(f"| {variant} | {statistics.fmean(stds):.1f} | {len(stds)} |")
    return "\n".join(lines)


def matrix_table(runs: list[RunRecord]) -> str:
    """Every run's accuracy matrix, one block of rows per run, with its AA, learning accuracy and BWT."""
    if not runs:
        return "(no finished run yet)"
    tasks = runs[0].tasks
    lines = [
        "accuracy matrix R, % (row: after training that task; columns: tasks), one block per run",
        "",
        "| run | after | " + " | ".join(tasks) + " | AA | LA | BWT |",
        "|---|---|" + "---:|" * (len(tasks) + 3),
    ]
    for run in runs:
        m = run.metrics
        label = f"{run.variant}, order {flatten(run.config).get('data.order')}, seed {run.seed}"
        for i, row in enumerate(run.matrix):
            after = "(before)" if i == 0 else run.tasks[i - 1]
            cells = " | ".join(f"{100 * a:.1f}" for a in row)
            tail = (
                f"{100 * m['final_average_accuracy']:.1f} | {100 * m['learning_accuracy']:.1f} | "
                f"{100 * m['backward_transfer']:+.1f}"
                if i == len(run.matrix) - 1
                else " |  | "
            )
            lines.append(f"| {label if i == 0 else ''} | {after} | {cells} | {tail} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ tables
def _runs(sub: str, variants: Sequence[str] | None = None) -> list[RunRecord]:
    folder = RESULTS / sub
    if not folder.is_dir():
        return []
    try:
        runs, _ = load_runs([folder])  # finished runs only
    except NotARunDir:
        return []
    return [r for r in runs if variants is None or r.variant in variants]


CONTROLS = "controls"
FT_CONTROLS = ("FT", "FT+MIGU", "FT+random", "FT+weight", "FT+gradient", "FT+MIGU(official)")
LORA_CONTROLS = ("LoRA", "LoRA+MIGU", "LoRA+random", "LoRA+weight", "LoRA+gradient", "LoRA+MIGU(official)")
CONTROL_PAIRS = (
    ("FT+MIGU", "FT"),
    ("FT+MIGU", "FT+random"),
    ("FT+random", "FT"),
    ("FT+MIGU", "FT+weight"),
    ("FT+MIGU", "FT+gradient"),
    ("FT+MIGU(official)", "FT+MIGU"),
    ("LoRA+MIGU", "LoRA"),
    ("LoRA+MIGU", "LoRA+random"),
    ("LoRA+random", "LoRA"),
    ("LoRA+MIGU", "LoRA+weight"),
    ("LoRA+MIGU", "LoRA+gradient"),
    ("LoRA+MIGU(official)", "LoRA+MIGU"),
    ("OSF", "FT"),
    ("FT+MIGU", "OSF"),
)


def _ordered(runs: list[RunRecord]) -> list[RunRecord]:
    """Runs in the order of the controls' variants (FT block, then LoRA), so tables read the same."""
    rank = {v: i for i, v in enumerate((*FT_CONTROLS, *LORA_CONTROLS, "OSF"))}
    return sorted(runs, key=lambda r: rank.get(r.variant or "", len(rank)))


def _family(variant: str | None) -> str:
    """``FT+MIGU`` -> ``FT``, ``LoRA+random`` -> ``LoRA``: the base method a control belongs to."""
    return (variant or "").split("+")[0]


#: The variants a point of a family needs before any of its runs is shown: the method, with MIGU and
#: with a random mask. The other controls (weight, gradient, official) are shown wherever they ran,
#: and compared only on the points they share (paired tables), so a control run on fewer orders does
#: not remove points from the main comparison.
CORE = ("", "+MIGU", "+random")


def complete_pairs(runs: list[RunRecord], core: Sequence[str] = CORE) -> list[RunRecord]:
    """The runs of the (task order, seed) points at which every ``core`` variant of their family (FT
    or LoRA; default :data:`CORE`) that ran anywhere has finished.

    A sweep in progress has some points with fewer variants; a mean over different points would
    compare methods on different seeds and orders. Families are completed separately, so LoRA
    controls that cover fewer orders do not remove FT points.
    """
    seen: dict[str, set] = defaultdict(set)  # family -> its core variants that ran anywhere
    by_key: dict[tuple, set] = defaultdict(set)
    for r in runs:
        family = _family(r.variant)
        if (r.variant or "") in {family + c for c in core}:
            seen[family].add(r.variant)
            by_key[(family, pair_key(r))].add(r.variant)
    keep = {k for k, v in by_key.items() if v == seen[k[0]]}
    return [r for r in runs if (_family(r.variant), pair_key(r)) in keep]


def matched_sides(
    runs: list[RunRecord], pairs: Sequence[tuple[str, str]]
) -> list[tuple[str, str, tuple, dict[str, tuple[float, float]]]]:
    """``(A, B, (order, tasks, seed), {metric: (A, B) in %})`` for every run pair matched on
    (task order, seed), with the three metrics of :data:`_SIDES`."""
    by_variant: dict[str, dict[tuple, RunRecord]] = defaultdict(dict)
    for run in runs:
        by_variant[run.variant or ""][pair_key(run)] = run
    out = []
    for a, b in pairs:
        for key in sorted(set(by_variant[a]) & set(by_variant[b]), key=str):
            ra, rb = by_variant[a][key], by_variant[b][key]
            out.append((a, b, key, {n: (100.0 * ra.metrics[n], 100.0 * rb.metrics[n]) for n in _SIDES}))
    return out


def sides_table(runs: list[RunRecord], pairs: Sequence[tuple[str, str]]) -> str:
    """Per matched run pair, sorted by how much the base method forgot: what MIGU cost right after
    learning (learning accuracy) beside what it kept (BWT), and the net (AA)."""
    rows = []
    for a, b, key, m in matched_sides(runs, pairs):
        order = key[0] if key[0] is not None else "-"
        rows.append((m["backward_transfer"][1], a, b, order, key[2], m))
    lines = [
        "Both sides per matched run, sorted by the base method's forgetting: A - B in points",
        "",
        "| A - B | order | seed | BWT of B | learning acc. A - B | BWT A - B | AA A - B |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for bwt_b, a, b, order, seed, m in sorted(rows, key=lambda r: (r[0], r[1], str(r[3]), r[4])):
        d = {n: m[n][0] - m[n][1] for n in _SIDES}
        lines.append(
            f"| {a} - {b} | {order} | {seed} | {bwt_b:+.1f} | {d['learning_accuracy']:+.1f} "
            f"| {d['backward_transfer']:+.1f} | {d['final_average_accuracy']:+.1f} |"
        )
    return "\n".join(lines)


def sides_summary_table(
    settings: Sequence[tuple[str, list[RunRecord], Sequence[tuple[str, str]]]],
    title: str = "Every setting, MIGU (A) against its base method (B): mean paired differences in points",
) -> str:
    """One row per (setting, A - B) over every experiment: how much B forgot, what A cost in learning
    accuracy, what it kept (BWT) and the net (AA), and in how many pairs a learning cost was not paid
    back (A learned less and ended lower)."""
    lines = [
        title,
        "",
        "| setting | A - B | pairs | BWT of B | learning acc. A - B | BWT A - B | AA A - B | AA higher | "
        "learned less, ended lower |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs, pairs in settings:
        by_pair: dict[tuple[str, str], list[dict[str, tuple[float, float]]]] = defaultdict(list)
        for a, b, _, m in matched_sides(runs, pairs):
            by_pair[(a, b)].append(m)
        for (a, b), ms in by_pair.items():
            d = {n: [m[n][0] - m[n][1] for m in ms] for n in _SIDES}
            unpaid = sum(
                la < 0 and aa < 0
                for la, aa in zip(d["learning_accuracy"], d["final_average_accuracy"], strict=True)
            )
            bwt_b = statistics.fmean(m["backward_transfer"][1] for m in ms)
            lines.append(
                f"| {label} | {a} - {b} | {len(ms)} | {bwt_b:+.1f} | {diff_cell(d['learning_accuracy'])} "
                f"| {diff_cell(d['backward_transfer'])} | {diff_cell(d['final_average_accuracy'])} "
                f"| {sum(x > 0 for x in d['final_average_accuracy'])} of {len(ms)} | {unpaid} of {len(ms)} |"
            )
    return "\n".join(lines) if len(lines) > 4 else "(no finished run yet)"


_SIDES = ("learning_accuracy", "backward_transfer", "final_average_accuracy")


# --------------------------------------------------------------------------- when each side wins
FIGURE_TRADEOFF = ROOT / "docs" / "figures" / "tradeoff.png"
#: Bins of how much the base method forgot (its BWT, points): (label, lower bound exclusive, upper).
FORGETTING_BINS = (
    ("B forgot little: BWT of B > -5", -5.0, math.inf),
    ("B forgot some: -15 < BWT of B <= -5", -15.0, -5.0),
    ("B forgot much: BWT of B <= -15", -math.inf, -15.0),
)


def tradeoff_points(
    settings: Sequence[tuple[str, list[RunRecord], Sequence[tuple[str, str]]]],
) -> dict[str, list[tuple[float, float, float]]]:
    """Per setting: ``(learning acc. A - B, kept A - B, BWT of B)`` in points for every matched pair.

    "Kept" is ``(AA - LA)`` of A minus that of B: with T tasks, AA - LA = (T - 1) / T * BWT exactly,
    so it is what A changed in retention, in AA points, and ``learning + kept = AA A - B`` to the
    last digit: a pair's net is split into what it did to learning and what it did to keeping.
    """
    out: dict[str, list[tuple[float, float, float]]] = {}
    for label, runs, pairs in settings:
        pts = []
        for _, _, _, m in matched_sides(runs, pairs):
            la = m["learning_accuracy"][0] - m["learning_accuracy"][1]
            aa = m["final_average_accuracy"][0] - m["final_average_accuracy"][1]
            pts.append((la, aa - la, m["backward_transfer"][1]))
        if pts:
            out[label] = pts
    return out


def forgetting_bins_table(points: dict[str, list[tuple[float, float, float]]]) -> str:
    """Every MIGU-vs-base pair of every setting, grouped by how much the base method forgot: where
    MIGU's learning cost was paid back by what it kept, and where not."""
    lines = [
        "Every pair of the summary above, grouped by the base method's forgetting: mean ± std of A - B, points",
        "",
        "| base forgetting | pairs | from | learning acc. A - B | kept (AA - LA) A - B | AA A - B | AA higher "
        "| learned less, ended lower |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, low, high in FORGETTING_BINS:
        rows = [(label, p) for label, pts in points.items() for p in pts if low < p[2] <= high]
        if not rows:
            continue
        la = [p[0] for _, p in rows]
        kept = [p[1] for _, p in rows]
        aa = [p[0] + p[1] for _, p in rows]
        where = "; ".join(f"{label} {n}" for label, n in Counter(label for label, _ in rows).items())
        unpaid = sum(x < 0 and y < 0 for x, y in zip(la, aa, strict=True))
        lines.append(
            f"| {name} | {len(rows)} | {where} | {diff_cell(la)} | {diff_cell(kept)} | {diff_cell(aa)} "
            f"| {sum(x > 0 for x in aa)} of {len(rows)} | {unpaid} of {len(rows)} |"
        )
    return "\n".join(lines) if len(lines) > 4 else "(no finished run yet)"


def _if_any(
    sub: str, make: Callable[[list[RunRecord]], str], core: Sequence[str] = CORE
) -> Callable[[], str]:
    """A table of the finished runs under ``results/<sub>`` at the points every ``core`` variant of
    their family has finished (see :func:`complete_pairs`), or a line saying there are none yet."""

    def build() -> str:
        runs = _ordered(complete_pairs(_runs(sub), core))
        return make(runs) if runs else "(no finished run yet)"

    return build


def _controls(metric: str) -> Callable[[], str]:
    return _if_any(CONTROLS, lambda runs: table(runs, metric))


# ------------------------------------------------------------------------ parts of the official choice
OFFICIAL_PARTS = "official-parts"
#: The keys in which the official code's MIGU differs from ours (docs/results.md, "Our MIGU and the
#: official one"); runs under results/official-parts set some of them on one of our MIGU variants.
OFFICIAL_KEYS = ("migu.skip_first_task", "migu.targets", "migu.mask_bias", "migu.keep_rule")


def official_parts(
    parts: list[RunRecord], controls: list[RunRecord]
) -> tuple[list[RunRecord], list[tuple[str, str]]]:
    """The runs that set part of the official choice, renamed by the keys they set (found against
    the controls run of the same variant, order and seed), with the controls' runs of that variant and
    of its official choice at the same points, and the pairs that place each part between the two."""
    by_key = {(r.variant, pair_key(r)): r for r in controls}
    renamed, pairs = [], []
    for run in parts:
        ours = by_key.get((run.variant, pair_key(run)))
        official = by_key.get((f"{run.variant}(official)", pair_key(run)))
        if ours is None or official is None:
            continue
        mine, base = flatten(run.config), flatten(ours.config)
        changed = [f"{k.split('.', 1)[1]}={mine.get(k)}" for k in OFFICIAL_KEYS if mine.get(k) != base.get(k)]
        name = f"{run.variant}, {' '.join(changed) or 'no official key'}"
        renamed += [dataclasses.replace(run, variant=name), ours, official]
        for pair in ((name, ours.variant), (official.variant, name)):
            if pair not in pairs:
                pairs.append(pair)
    return renamed, pairs


def official_parts_table() -> str:
    runs, pairs = official_parts(_runs(OFFICIAL_PARTS), _runs(CONTROLS))
    if not runs:
        return "(no finished run yet)"
    return sides_summary_table(
        [("Standard, options head, MiniLM", runs, pairs)],
        "Our MIGU with part of the official choice (A or B) against ours and the official one: mean paired "
        "differences in points",
    )


# ------------------------------------------------------------------------------------ threshold curve
THRESHOLD = "threshold"
FIGURE_THRESHOLD = ROOT / "docs" / "figures" / "threshold.png"
_CURVE = ("FT+MIGU", "FT+random")


def threshold_points(runs_threshold: list[RunRecord], runs_controls: list[RunRecord]) -> dict[str, dict]:
    """``{variant: {T: {seed: run}}}`` for FT+MIGU and FT+random on order 1, and FT (T = 0: no row
    masked) from the controls; only the (T, seed) points at which both curves finished."""
    points: dict[str, dict] = {v: defaultdict(dict) for v in (*_CURVE, "FT")}
    for run in runs_threshold + runs_controls:
        cfg = flatten(run.config)
        if cfg.get("data.order") != 1 or cfg.get("eval.label_space") != "options":
            continue
        if run.variant == "FT":
            points["FT"][0.0][run.seed] = run
        elif run.variant in _CURVE:
            points[run.variant][float(cfg["migu.threshold"])][run.seed] = run
    for t in set(points[_CURVE[0]]) | set(points[_CURVE[1]]):
        shared = set(points[_CURVE[0]].get(t, {})) & set(points[_CURVE[1]].get(t, {}))
        for v in _CURVE:
            points[v][t] = {s: r for s, r in points[v].get(t, {}).items() if s in shared}
            if not points[v][t]:
                del points[v][t]
    return points


def _pct(runs: Sequence[RunRecord], metric: str) -> str:
    """Mean ± std in %, rounded as the controls tables round them (the same cell reads the same)."""
    return mean_std_cell([r.metrics[metric] for r in runs], 100.0, 1)


def _paired_cell(a: dict, b: dict, seeds: Sequence[int], metric: str) -> str:
    """Mean ± std over ``seeds`` of ``a[seed] - b[seed]`` for ``metric``, in points."""
    return diff_cell([100.0 * (a[s].metrics[metric] - b[s].metrics[metric]) for s in seeds])


def threshold_table(points: dict[str, dict]) -> str:
    """Per threshold T: AA, BWT and learning accuracy of FT+MIGU and FT+random, each with the paired
    difference MIGU - random; T = 0 is plain FT."""
    lines = [
        "Order 1, options protocol; mean ± std over seeds, %; T = fraction of rows masked each step "
        "(T = 0: plain FT); MIGU - random paired by seed, points",
        "",
        "| T | seeds | AA MIGU | AA random | AA MIGU - random | BWT MIGU | BWT random | BWT MIGU - random "
        "| LA MIGU | LA random | LA MIGU - random |",
        "|---:|---|" + "---:|" * 9,
    ]
    ft = list(points["FT"].get(0.0, {}).values())
    if ft:
        seeds = ", ".join(str(r.seed) for r in sorted(ft, key=lambda r: r.seed))
        aa, bwt, la = (
            _pct(ft, m) for m in ("final_average_accuracy", "backward_transfer", "learning_accuracy")
        )
        lines.append(f"| 0 (FT) | {seeds} | {aa} | {aa} |  | {bwt} | {bwt} |  | {la} | {la} |  |")
    for t in sorted(points[_CURVE[0]]):
        mig, rnd = points[_CURVE[0]][t], points[_CURVE[1]][t]
        seeds = sorted(mig)
        m, r = [mig[s] for s in seeds], [rnd[s] for s in seeds]
        cells = [
            f"{_pct(m, metric)} | {_pct(r, metric)} | {_paired_cell(mig, rnd, seeds, metric)}"
            for metric in ("final_average_accuracy", "backward_transfer", "learning_accuracy")
        ]
        lines.append(f"| {t:g} | {', '.join(map(str, seeds))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def threshold_figure(points: dict[str, dict]) -> bytes | None:
    """The curve as `migu report` draws it (``migu.report.plots.threshold_curve``): AA against T."""
    from migu.report.plots import threshold_curve

    def point(t: float, runs: dict) -> tuple[float, float, float | None]:
        return (t, *mean_std([100.0 * r.metrics["final_average_accuracy"] for r in runs.values()]))

    series = {v: [point(t, runs) for t, runs in points[v].items()] for v in _CURVE if points[v]}
    if not series:
        return None
    ft = points["FT"].get(0.0)
    if ft:  # T = 0 masks nothing: both curves start at plain FT
        for pts in series.values():
            pts.append(point(0.0, ft))
    return threshold_curve(series, {}, "final average accuracy (AA), %")


def _threshold_points() -> dict[str, dict]:
    return threshold_points(_runs(THRESHOLD), _runs(CONTROLS))


# -------------------------------------------------------------------------------------- Long sequence
LONG = "long"
#: Each MIGU variant against its method, and FT+MIGU against its controls (a random mask of the same
#: size, FT with a smaller step), on the Long orders; pairs without runs are left out.
LONG_PAIRS = (
    ("FT+MIGU", "FT"),
    ("FT+MIGU", "FT+random"),
    ("FT+random", "FT"),
    ("FT-lr3e-5", "FT"),
    ("FT+MIGU", "FT-lr3e-5"),
    ("LoRA+MIGU", "LoRA"),
    ("IncLoRA+MIGU", "IncLoRA"),
    ("O-LoRA+MIGU", "O-LoRA"),
    ("LoRA+replay+MIGU", "LoRA+replay"),
    ("LoRA+replay+MIGU-T0.7", "LoRA+replay"),
    ("LoRA+replay+MIGU-T0.7", "LoRA+replay+MIGU"),
    ("OSF", "FT"),
    ("FT+MIGU", "OSF"),
)
#: Table-name suffix -> (metrics.json key, title).
_SHORT = {
    "aa": ("final_average_accuracy", "Final average accuracy"),
    "la": ("learning_accuracy", "Learning accuracy"),
    "bwt": ("backward_transfer", "Backward transfer"),
}


#: On the Long orders a point needs the method and its MIGU variant; the controls (a random mask, a
#: smaller step) are shown wherever they ran and compared only on the points they share.
LONG_CORE = ("", "+MIGU")


def sequence_tables(
    name: str, sub: str, pairs: Sequence[tuple[str, str]], core: Sequence[str]
) -> dict[str, Callable[[], str]]:
    """The tables of one experiment folder ``results/<sub>``, named ``<name>-<table>``: AA, learning
    accuracy and BWT per variant and order, their paired differences over ``pairs``, the per-task view
    (right after learning -> at the end) and both sides per matched run. A point is shown once every
    ``core`` variant of its family has finished there (see :func:`complete_pairs`)."""

    def build(make: Callable[[list[RunRecord]], str]) -> Callable[[], str]:
        return _if_any(sub, make, core)

    return {
        **{f"{name}-{key}": build(lambda r, m=metric: table(r, m)) for key, (metric, _) in _SHORT.items()},
        **{
            f"{name}-paired-{key}": build(lambda r, m=metric, t=title: paired_table(r, pairs, m, t))
            for key, (metric, title) in _SHORT.items()
        },
        f"{name}-per-task": build(per_task_table),
        f"{name}-sides": build(lambda r: sides_table(r, pairs)),
    }


def answers_table(runs: list[RunRecord]) -> str:
    """Per variant and order, over the runs that record it: the share of the final evaluation's
    answers that name another task's label only, and that name no label of the sequence."""
    cells: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        for kind in ("other_task_label", "no_label"):
            value = run.metrics.get(f"final_answers_{kind}")
            if value is not None:
                cells[(run.variant, flatten(run.config).get("data.order"))][kind].append(float(value))
    lines = [
        "What the answers were after the last task, % of the test items (mean ± std over seeds)",
        "",
        "| variant | order | runs | another task's label | no label |",
        "|---|---:|---:|---:|---:|",
    ]
    for (variant, order), kinds in cells.items():
        other, none = kinds["other_task_label"], kinds["no_label"]
        lines.append(
            f"| {variant} | {order} | {len(other)} | {mean_std_cell(other, 100.0, 1)} | {mean_std_cell(none, 100.0, 1)} |"
        )
    return "\n".join(lines) if len(lines) > 4 else "(no finished run records it yet)"


# ----------------------------------------------------------------------------- task-label-free head
PROTOCOL_ALL = "protocol-all"
#: The small preset with one head over every label of the sequence: MIGU against FT, and the official
#: choice against ours.
PROTOCOL_ALL_PAIRS = (("FT+MIGU", "FT"), ("FT+MIGU(official)", "FT+MIGU"))


# ------------------------------------------------------------------------------------------ medium budget
MEDIUM = "medium"
#: The Standard orders at 200 examples a class with the task-label-free head: MIGU against its base
#: and the random mask of the same size.
MEDIUM_PAIRS = (("FT+MIGU", "FT"), ("FT+MIGU", "FT+random"), ("FT+random", "FT"), ("LoRA+MIGU", "LoRA"))
#: The same preset with the options-restricted head (eval.label_space=options): is amazon learnable at
#: this budget at all, or only not under the task-label-free head?
MEDIUM_OPTIONS = "medium-options"


# ------------------------------------------------------------------------------------------ generative
GENERATIVE = "generative"
#: SmolLM2 writes the label text (exact match, no restriction to the input's options): each MIGU
#: variant against its method.
GENERATIVE_PAIRS = (("FT+MIGU", "FT"), ("LoRA+MIGU", "LoRA"))


def rows_updated_table(runs: list[RunRecord]) -> str:
    """Per run that records it: the share of MIGU's target rows updated by at least one step of a
    task (``rows_updated_per_task``), mean and range over the tasks."""
    lines = [
        "Share of the target rows updated by at least one step of a task (union of the per-step masks), %",
        "",
        "| run | tasks | mean | min | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        values = [100.0 * v for v in run.metrics.get("rows_updated_per_task") or [] if v is not None]
        if values:
            label = f"{run.variant}, order {flatten(run.config).get('data.order')}, seed {run.seed}"
            mean = statistics.fmean(values)
            lines.append(f"| {label} | {len(values)} | {mean:.1f} | {min(values):.1f} | {max(values):.1f} |")
    return "\n".join(lines) if len(lines) > 4 else "(no finished run records it yet)"


# ------------------------------------------------------------------------------ instruction tuning
INSTRUCT = "instruct"
#: LoRA+MIGU against LoRA on the instruction tasks, and on the general probes (COPA) they must not forget.
INSTRUCT_PAIRS = (("LoRA+MIGU", "LoRA"),)
_INSTRUCT_METRICS = (
    ("final_average_accuracy", "AA"),
    ("learning_accuracy", "learning acc."),
    ("backward_transfer", "BWT"),
)


def general_probes(run: RunRecord) -> dict[str, tuple[float, float]]:
    """``{probe: (accuracy before training, accuracy after the last task)}`` in %, from the
    ``general/<probe>/acc_before`` and ``general/<probe>/acc`` keys ``eval.general`` writes to
    ``metrics.json``; empty when the run scored no probe (or not before training)."""
    out = {}
    for probe in probe_names(run.metrics):
        before, after = (
            run.metrics.get(f"general/{probe}/acc_before"),
            run.metrics.get(f"general/{probe}/acc"),
        )
        if before is not None and after is not None:
            out[probe] = (100.0 * before, 100.0 * after)
    return out


def instruct_table(runs: list[RunRecord]) -> str:
    """Per variant, mean ± std over seeds: AA, learning accuracy and BWT on the trained tasks, and each
    general probe's accuracy before training, after the last task, and the change (after - before)."""
    by_variant: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        by_variant[run.variant or ""].append(run)
    probes = sorted({p for run in runs for p in general_probes(run)})
    head = [name for _, name in _INSTRUCT_METRICS]
    for p in probes:
        head += [f"{p} before", f"{p} after", f"{p} change"]
    lines = [
        "Trained tasks (AA, learning accuracy, BWT) and general probes (accuracy before training, after the "
        "last task, change in points), %, mean ± std over seeds",
        "",
        "| variant | " + " | ".join(head) + " | seeds |",
        "|---|" + "---:|" * (len(head) + 1),
    ]
    for variant, group in by_variant.items():
        cells = [
            mean_std_cell([r.metrics[m] for r in group if m in r.metrics], 100.0, 1)
            for m, _ in _INSTRUCT_METRICS
        ]
        for p in probes:
            values = [general_probes(r)[p] for r in group if p in general_probes(r)]
            cells += [
                mean_std_cell([before for before, _ in values], 1.0, 1),
                mean_std_cell([after for _, after in values], 1.0, 1),
                mean_std_cell([after - before for before, after in values], 1.0, 1),
            ]
        seeds = ", ".join(str(r.seed) for r in sorted(group, key=lambda r: str(r.seed)))
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {seeds} |")
    return "\n".join(lines) if by_variant else "(no finished run yet)"


def instruct_paired_table(runs: list[RunRecord], pairs: Sequence[tuple[str, str]]) -> str:
    """Per pair (A, B) and quantity: the differences A - B in points, matched on seed, for AA, learning
    accuracy, BWT and every general probe's accuracy after the last task."""
    by_variant: dict[str, dict[tuple, RunRecord]] = defaultdict(dict)
    for run in runs:
        by_variant[run.variant or ""][pair_key(run)] = run
    probes = sorted({p for run in runs for p in general_probes(run)})
    lines = [
        "Paired differences A - B in points, matched on seed",
        "",
        "| A - B | quantity | pairs | mean ± std | A higher / equal / lower | p (sign-flip) | differences |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for a, b in pairs:
        keys = sorted(set(by_variant[a]) & set(by_variant[b]), key=str)
        quantities: list[tuple[str, Callable[[RunRecord], float | None]]] = [
            (name, lambda r, m=metric: 100.0 * r.metrics[m] if m in r.metrics else None)
            for metric, name in _INSTRUCT_METRICS
        ]
        quantities += [
            (f"{p} after the last task", lambda r, p=p: general_probes(r).get(p, (None, None))[1])
            for p in probes
        ]
        for name, value in quantities:
            values = [(value(by_variant[a][k]), value(by_variant[b][k])) for k in keys]
            diffs = [va - vb for va, vb in values if va is not None and vb is not None]
            if diffs:
                lines.append(f"| {a} - {b} | {name} | {_diff_cells(diffs)} |")
    return "\n".join(lines) if len(lines) > 4 else "(no matched pair yet)"


# ------------------------------------------------------------------------ continual pre-training
#: ``migu pretrain`` runs (one folder per seed): end-task accuracy and macro-F1 of the un-pre-trained
#: model (``base``) and of the model pre-trained on the domains in order, without and with MIGU.
CPT = "cpt"
CPT_ROWS = ("base", "CPT", "CPT+MIGU")
CPT_PAIRS = (("CPT", "base"), ("CPT+MIGU", "CPT"), ("CPT+MIGU", "base"))


def cpt_runs(folder: Path) -> list[tuple[int, dict]]:
    """``(seed, results.json)`` of every finished ``migu pretrain`` run under ``folder`` (a run is
    finished once its ``results.json`` exists: it is written last)."""
    import yaml

    out = []
    for path in sorted(folder.rglob("results.json")):
        seed = yaml.safe_load((path.parent / "config.yaml").read_text(encoding="utf-8"))["seed"]
        out.append((int(seed), json.loads(path.read_text(encoding="utf-8"))))
    return sorted(out, key=lambda r: r[0])


def cpt_table(runs: list[tuple[int, dict]]) -> str:
    """Per row and end task: accuracy / macro-F1 in %, mean ± std over seeds."""
    if not runs:
        return "(no finished run yet)"
    domains = [*runs[0][1]["domains"], "mean"]
    seeds = ", ".join(str(seed) for seed, _ in runs)
    lines = [
        f"End-task accuracy / macro-F1, %, mean ± std over seeds {seeds} (each end task fine-tuned on a "
        "fresh copy of the final model)",
        "",
        "| row | " + " | ".join(domains) + " |",
        "|---|" + "---:|" * len(domains),
    ]
    for row in CPT_ROWS:
        if any(row not in data["rows"] for _, data in runs):
            continue
        cells = []
        for d in domains:
            acc, f1 = ([data["rows"][row][d][k] for _, data in runs] for k in ("accuracy", "macro_f1"))
            cells.append(f"{mean_std_cell(acc, 100.0, 1)} / {mean_std_cell(f1, 100.0, 1)}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpt_paired_table(runs: list[tuple[int, dict]]) -> str:
    """Paired differences A - B of the mean over end tasks, matched on seed, in points."""
    lines = [
        "Mean over end tasks: paired differences A - B in points, matched on seed",
        "",
        "| A - B | seeds | accuracy | macro-F1 | accuracy per seed |",
        "|---|---:|---:|---:|---|",
    ]
    for a, b in CPT_PAIRS:
        pairs = [data["rows"] for _, data in runs if a in data["rows"] and b in data["rows"]]
        if not pairs:
            continue
        cells = [
            diff_cell([100.0 * (r[a]["mean"][key] - r[b]["mean"][key]) for r in pairs])
            for key in ("accuracy", "macro_f1")
        ]
        listed = ", ".join(
            f"{100.0 * (r[a]['mean']['accuracy'] - r[b]['mean']['accuracy']):+.1f}" for r in pairs
        )
        lines.append(f"| {a} - {b} | {len(pairs)} | {cells[0]} | {cells[1]} | {listed} |")
    return "\n".join(lines) if len(lines) > 4 else "(no finished run yet)"


# ------------------------------------------------------------------------- rows updated, and a repeat
#: The T = 0.9 runs of the threshold curve made again with the record of which rows each task
#: updated; the same config and code path, so their accuracy matrices repeat the earlier runs.
ROWS_UPDATED = "rows-updated"


def _repeat_key(run: RunRecord) -> tuple:
    cfg = flatten(run.config)
    return (run.variant, cfg.get("migu.threshold"), cfg.get("eval.label_space"), *pair_key(run))


def repeat_table(again: list[RunRecord], earlier: list[RunRecord]) -> str:
    """Per run made again: the largest absolute difference of its accuracy matrix from the earlier
    run with the same variant, threshold, protocol, order and seed (0.0 = repeated to the digit)."""
    first = {_repeat_key(r): r for r in earlier}
    lines = [
        "Runs made again against the earlier run of the same variant, T, order and seed",
        "",
        "| run | earlier AA | AA again | largest difference in the accuracy matrix, points |",
        "|---|---:|---:|---:|",
    ]
    for run in again:
        old = first.get(_repeat_key(run))
        if old is None:
            continue
        pairs = [
            (a, b) for ra, rb in zip(run.matrix, old.matrix, strict=True) for a, b in zip(ra, rb, strict=True)
        ]
        if any(math.isnan(a) != math.isnan(b) for a, b in pairs):
            raise SystemExit(f"{run.run_dir} and {old.run_dir} evaluated different entries: not a repeat")
        diff = max((abs(a - b) for a, b in pairs if not math.isnan(a)), default=0.0)
        label = f"{run.variant}, T {flatten(run.config).get('migu.threshold')}, seed {run.seed}"
        aa_old, aa_new = (100.0 * r.metrics["final_average_accuracy"] for r in (old, run))
        lines.append(f"| {label} | {aa_old:.1f} | {aa_new:.1f} | {100.0 * diff:.1f} |")
    return "\n".join(lines) if len(lines) > 4 else "(no run made again yet)"


TABLES: dict[str, Callable[[], str]] = {
    **{
        name: make
        for name, make in sequence_tables("protocol-all", PROTOCOL_ALL, PROTOCOL_ALL_PAIRS, LONG_CORE).items()
        if name
        in ("protocol-all-aa", "protocol-all-paired-aa", "protocol-all-paired-la", "protocol-all-per-task")
    },
    "controls-aa": _controls("final_average_accuracy"),
    "controls-la": _controls("learning_accuracy"),
    "controls-bwt": _controls("backward_transfer"),
    "controls-paired-aa": _if_any(
        CONTROLS, lambda r: paired_table(r, CONTROL_PAIRS, "final_average_accuracy", "Final average accuracy")
    ),
    "controls-paired-la": _if_any(
        CONTROLS, lambda r: paired_table(r, CONTROL_PAIRS, "learning_accuracy", "Learning accuracy")
    ),
    "controls-paired-bwt": _if_any(
        CONTROLS, lambda r: paired_table(r, CONTROL_PAIRS, "backward_transfer", "Backward transfer")
    ),
    "controls-seed-spread": _if_any(
        CONTROLS, lambda r: seed_spread_table(r, "final_average_accuracy", "Final average accuracy")
    ),
    "controls-per-task": _if_any(CONTROLS, per_task_table),
    "threshold": lambda: threshold_table(_threshold_points()),
    "controls-sides": _if_any(CONTROLS, lambda r: sides_table(r, (("FT+MIGU", "FT"), ("LoRA+MIGU", "LoRA")))),
    **sequence_tables("long", LONG, LONG_PAIRS, LONG_CORE),
    "long-rows-updated": _if_any(LONG, rows_updated_table, LONG_CORE),
    **sequence_tables("medium", MEDIUM, MEDIUM_PAIRS, LONG_CORE),
    "medium-matrix": _if_any(MEDIUM, matrix_table, LONG_CORE),
    "medium-answers": _if_any(MEDIUM, answers_table, LONG_CORE),
    "official-parts": official_parts_table,
    **{  # the doc shows the paired tables and the per-task view; the "sides" of each pair are in the summary
        name: make
        for name, make in sequence_tables("medium-options", MEDIUM_OPTIONS, MEDIUM_PAIRS, LONG_CORE).items()
        if name not in ("medium-options-la", "medium-options-bwt", "medium-options-sides")
    },
    **sequence_tables("generative", GENERATIVE, GENERATIVE_PAIRS, LONG_CORE),
    "generative-answers": _if_any(GENERATIVE, answers_table, LONG_CORE),
    "instruct": _if_any(INSTRUCT, instruct_table, LONG_CORE),
    "instruct-paired": _if_any(INSTRUCT, lambda r: instruct_paired_table(r, INSTRUCT_PAIRS), LONG_CORE),
    "instruct-per-task": _if_any(INSTRUCT, per_task_table, LONG_CORE),
    "cpt": lambda: cpt_table(cpt_runs(RESULTS / CPT)),
    "cpt-paired": lambda: cpt_paired_table(cpt_runs(RESULTS / CPT)),
    "sides-summary": lambda: sides_summary_table(_summary_settings()),
    "sides-by-forgetting": lambda: forgetting_bins_table(tradeoff_points(_summary_settings())),
    "rows-updated": lambda: rows_updated_table(_runs(ROWS_UPDATED)),
    "rows-updated-repeat": lambda: repeat_table(_runs(ROWS_UPDATED), _runs(THRESHOLD)),
}


#: MIGU against its base method, per method family (the controls and other pairs stay in their sections).
_MIGU_PAIRS = tuple((f"{m}+MIGU", m) for m in ("FT", "LoRA", "IncLoRA", "O-LoRA", "LoRA+replay"))


@functools.cache  # read once: the summary table, the pooled table and the figure all use it
def _summary_settings() -> list[tuple[str, list[RunRecord], Sequence[tuple[str, str]]]]:
    """The experiments of the cross-setting summary, at the points their own tables use."""
    return [
        ("Standard, options head, MiniLM", complete_pairs(_runs(CONTROLS)), _MIGU_PAIRS),
        ("Standard, task-label-free head, MiniLM", _runs(PROTOCOL_ALL), _MIGU_PAIRS),
        (
            "Standard medium budget, task-label-free head, MiniLM",
            complete_pairs(_runs(MEDIUM), LONG_CORE),
            _MIGU_PAIRS,
        ),
        (
            "Standard medium budget, options head, MiniLM",
            complete_pairs(_runs(MEDIUM_OPTIONS), LONG_CORE),
            _MIGU_PAIRS,
        ),
        ("Long, options head, MiniLM", complete_pairs(_runs(LONG), LONG_CORE), _MIGU_PAIRS),
        ("Standard, generative, SmolLM2", complete_pairs(_runs(GENERATIVE), LONG_CORE), _MIGU_PAIRS),
        (
            "Instruction tuning, option ranking, SmolLM2",
            complete_pairs(_runs(INSTRUCT), LONG_CORE),
            _MIGU_PAIRS,
        ),
    ]


def render(doc: str) -> str:
    """``doc`` with every marked table regenerated."""

    def replace(m: re.Match) -> str:
        name = m.group("id")
        if name not in TABLES:
            raise SystemExit(f"docs/results.md marks a table {name!r} that this script does not know")
        body = TABLES[name]()
        return f"{m.group(1)}{body}\n{m.group(4)}"

    return _BLOCK.sub(replace, doc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a table differs; write nothing")
    args = parser.parse_args()
    old = DOC.read_text(encoding="utf-8")
    new = render(old)
    if args.check:
        if new != old:
            print(
                "docs/results.md is out of date with results/: run benchmarks/results_doc.py", file=sys.stderr
            )
            return 1
        print("docs/results.md matches results/")
        return 0
    from migu.report.plots import tradeoff_scatter

    points = {k: [p[:2] for p in v] for k, v in tradeoff_points(_summary_settings()).items()}
    figures = {
        FIGURE_THRESHOLD: threshold_figure(_threshold_points()),
        FIGURE_TRADEOFF: tradeoff_scatter(points) if points else None,
    }
    for path, figure in figures.items():
        if figure is None:
            continue
        atomic_write_bytes(path, figure)
        print(f"drew {path.relative_to(ROOT)}")
    if new != old:
        atomic_write_text(DOC, new)
        print(f"rewrote {len(_BLOCK.findall(new))} table(s) in docs/results.md")
    else:
        print("docs/results.md already matches results/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
