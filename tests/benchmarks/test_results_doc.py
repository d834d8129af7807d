"""benchmarks/results_doc.py: the statistics it prints, and docs/results.md matching results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _cells(table: str, label: str) -> list[str]:
    """The cells after the first of the Markdown row whose first cell is ``label``."""
    line = next(line for line in table.splitlines() if line.startswith(f"| {label} |"))
    return [c.strip() for c in line.split("|")[2:-1]]


def test_results_doc_matches_the_raw_results():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_doc.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr + out.stdout


def test_tables_use_only_points_where_every_variant_finished(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import complete_pairs

    from migu.report.collect import load_runs

    variants = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    for seed, names in ((0, ("FT", "FT+MIGU")), (1, ("FT",))):  # seed 1: FT+MIGU not finished yet
        point = tmp_path / f"seed={seed}"
        point.mkdir()
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": variants}))
        for name in names:
            cfg = {"seed": seed, "data": {"order": 1}, "migu": {"enabled": name == "FT+MIGU"}}
            write_fake_run(point / name, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]])
    runs, _ = load_runs([tmp_path])
    kept = complete_pairs(runs)
    assert sorted((r.variant, r.seed) for r in kept) == [("FT", 0), ("FT+MIGU", 0)]


def test_families_are_completed_separately_and_both_sides_are_paired(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import complete_pairs, sides_table

    from migu.report.collect import load_runs

    names = ("FT", "FT+MIGU", "LoRA", "LoRA+MIGU")
    variants = {
        n: {"migu.enabled": "MIGU" in n, "method.name": "lora" if "LoRA" in n else "ft"} for n in names
    }
    # metrics per (variant, seed): learning accuracy, BWT, AA
    values = {
        ("FT", 0): (0.60, -0.20, 0.50),
        ("FT+MIGU", 0): (0.55, -0.05, 0.525),
        ("FT", 1): (0.70, -0.02, 0.69),
        ("FT+MIGU", 1): (0.62, -0.01, 0.615),
        ("LoRA", 0): (0.50, -0.10, 0.45),
        ("LoRA+MIGU", 0): (0.50, -0.04, 0.48),
    }
    for seed in (0, 1):  # LoRA ran at seed 0 only: it must not remove FT's seed 1
        point = tmp_path / f"seed={seed}"
        point.mkdir()
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": variants}))
        for name in names:
            if (name, seed) not in values:
                continue
            la, bwt, aa = values[(name, seed)]
            cfg = {"seed": seed, "data": {"order": 1}, "migu": {"enabled": "MIGU" in name}}
            cfg["method"] = {"name": "lora" if "LoRA" in name else "ft"}
            metrics = {"learning_accuracy": la, "backward_transfer": bwt, "final_average_accuracy": aa}
            write_fake_run(point / name, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]], metrics=metrics)
    runs, _ = load_runs([tmp_path])
    kept = complete_pairs(runs)
    assert sorted((r.variant, r.seed) for r in kept) == sorted(values)

    rows = [
        line
        for line in sides_table(kept, (("FT+MIGU", "FT"), ("LoRA+MIGU", "LoRA"))).splitlines()
        if "| 1 |" in line
    ]
    # Sorted by the base's BWT, most forgetting first: FT seed 0 (-20), LoRA seed 0 (-10), FT seed 1 (-2).
    assert [r.split("|")[1].strip() for r in rows] == ["FT+MIGU - FT", "LoRA+MIGU - LoRA", "FT+MIGU - FT"]
    first = [c.strip() for c in rows[0].split("|")[2:-1]]
    assert first == ["1", "0", "-20.0", "-5.0", "+15.0", "+2.5"]
    last = [c.strip() for c in rows[2].split("|")[2:-1]]
    assert last == ["1", "1", "-2.0", "-8.0", "+1.0", "-7.5"]

    # The cross-setting summary of the same pairs, by hand: FT seeds 0 and 1 give learning -5 and -8,
    # BWT +15 and +1, AA +2.5 and -7.5; seed 1 learned less and ended lower (not paid back).
    from results_doc import sides_summary_table

    summary = sides_summary_table(
        [("toy", kept, (("FT+MIGU", "FT"), ("LoRA+MIGU", "LoRA"), ("X+MIGU", "X")))]
    )
    ft = [c.strip() for c in next(r for r in summary.splitlines() if "FT+MIGU - FT" in r).split("|")[1:-1]]
    assert ft == [
        "toy",
        "FT+MIGU - FT",
        "2",
        "-11.0",
        "-6.5 ± 2.1",
        "+8.0 ± 9.9",
        "-2.5 ± 7.1",
        "1 of 2",
        "1 of 2",
    ]
    lora = [c.strip() for c in next(r for r in summary.splitlines() if "LoRA+MIGU" in r).split("|")[1:-1]]
    assert lora == ["toy", "LoRA+MIGU - LoRA", "1", "-10.0", "+0.0", "+6.0", "+3.0", "1 of 1", "0 of 1"]
    assert "X+MIGU" not in summary  # a pair with no runs gives no row
    assert sides_summary_table([("none", [], (("FT+MIGU", "FT"),))]) == "(no finished run yet)"

    # The same pairs grouped by the base's forgetting, by hand: FT seed 1 (BWT of B -2) forgot little,
    # LoRA seed 0 (-10) some, FT seed 0 (-20) much; kept = AA - LA change = AA diff - learning diff.
    from results_doc import forgetting_bins_table, tradeoff_points

    points = tradeoff_points([("toy", kept, (("FT+MIGU", "FT"), ("LoRA+MIGU", "LoRA")))])
    got = sorted(tuple(round(x, 9) for x in p) for p in points["toy"])
    assert got == [(-8.0, 0.5, -2.0), (-5.0, 7.5, -20.0), (0.0, 3.0, -10.0)]
    bins = forgetting_bins_table(points)
    expected = {
        "B forgot little: BWT of B > -5": ["-8.0", "+0.5", "-7.5", "0 of 1", "1 of 1"],
        "B forgot some: -15 < BWT of B <= -5": ["+0.0", "+3.0", "+3.0", "1 of 1", "0 of 1"],
        "B forgot much: BWT of B <= -15": ["-5.0", "+7.5", "+2.5", "1 of 1", "0 of 1"],
    }
    for label, cells in expected.items():
        assert _cells(bins, label) == ["1", "toy 1", *cells]
    assert forgetting_bins_table({}) == "(no finished run yet)"


def test_kept_is_the_bwt_side_of_aa_on_every_recorded_run():
    """AA - LA = (T - 1) / T * BWT holds for the metrics.json of every finished run in results/, so
    the split of a pair's AA difference into learning and keeping is exact, not a model of it."""
    from migu.report.collect import load_runs

    runs, _ = load_runs([ROOT / "results"])
    checked = 0
    for run in runs:
        m, n = run.metrics, len(run.tasks)
        if n < 2 or any(m.get(k) is None for k in ("learning_accuracy", "backward_transfer")):
            continue
        lhs = m["final_average_accuracy"] - m["learning_accuracy"]
        assert lhs == pytest.approx((n - 1) / n * m["backward_transfer"], abs=1e-9), run.run_dir
        checked += 1
    assert checked >= 50  # the controls alone hold more than 50 finished runs


def test_a_control_run_at_fewer_points_removes_no_point_of_the_main_comparison(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import complete_pairs

    from migu.report.collect import load_runs

    names = ("FT", "FT+MIGU", "FT+random", "FT+weight")
    variants = {n: {"migu.enabled": n != "FT"} for n in names}
    ran = {0: names, 1: names[:3], 2: ("FT", "FT+MIGU", "FT+weight")}  # seed 2: FT+random not finished
    for seed, here in ran.items():
        point = tmp_path / f"seed={seed}"
        point.mkdir()
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": variants}))
        for name in here:
            cfg = {"seed": seed, "data": {"order": 1}, "migu": {"enabled": name != "FT"}}
            write_fake_run(point / name, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]])
    runs, _ = load_runs([tmp_path])
    kept = sorted((r.variant, r.seed) for r in complete_pairs(runs))
    # FT+weight ran at seeds 0 and 2 only: seed 1 stays; seed 2 goes because a core variant is missing.
    assert kept == sorted([(n, 0) for n in names] + [(n, 1) for n in names[:3]])


def test_long_tables_read_a_learned_and_final_matrix(tmp_path):
    """eval.rows: learned-and-final leaves R[1][2], R[1][3], R[2][1], R[2][3] unevaluated (null in
    matrix.json); the per-task view needs only R[i][i] and the last row, the paired table only metrics."""
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from order_table import per_task_table
    from results_doc import LONG_PAIRS, complete_pairs, paired_table

    from migu.report.collect import load_runs

    variants = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    tasks = ("a", "b", "c")
    diag_final = {"FT": ((0.8, 0.6, 0.9), (0.4, 0.5, 0.9)), "FT+MIGU": ((0.7, 0.6, 0.8), (0.6, 0.6, 0.8))}
    for seed in (0, 1):
        point = tmp_path / f"seed={seed}"
        point.mkdir()
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": variants}))
        for name, (diag, final) in diag_final.items():
            matrix = [
                [0.1, 0.2, 0.3],
                [diag[0], None, None],
                [None, diag[1], None],
                list(final),
            ]
            la = sum(diag) / 3 + 0.01 * seed  # the seeds differ by a known amount
            cfg = {"seed": seed, "data": {"order": 4}, "migu": {"enabled": name == "FT+MIGU"}}
            write_fake_run(point / name, cfg, matrix, tasks=tasks, metrics={"learning_accuracy": la})
    runs = complete_pairs(load_runs([tmp_path])[0])
    per_task = per_task_table(runs)
    assert _cells(per_task, "FT") == ["80.0 -> 40.0", "60.0 -> 50.0", "90.0 -> 90.0", "2"]
    assert _cells(per_task, "FT+MIGU") == ["70.0 -> 60.0", "60.0 -> 60.0", "80.0 -> 80.0", "2"]
    paired = paired_table(runs, LONG_PAIRS, "learning_accuracy", "Learning accuracy")
    # LA: FT (0.8 + 0.6 + 0.9) / 3 = 76.67, FT+MIGU 70.0 -> -6.7 at both seeds; LoRA pairs absent.
    assert _cells(paired, "FT+MIGU - FT") == ["2", "-6.7 ± 0.0", "0 / 0 / 2", "0.500", "-6.7, -6.7"]
    assert "LoRA" not in paired


def test_threshold_table_pairs_migu_and_random_by_seed(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import threshold_points, threshold_table

    from migu.report.collect import load_runs

    def metrics(aa: float, bwt: float, la: float) -> dict:
        return {"final_average_accuracy": aa, "backward_transfer": bwt, "learning_accuracy": la}

    values = {  # (variant, T, seed) -> AA, BWT, LA
        ("FT+MIGU", 0.9, 0): (0.58, -0.01, 0.59),
        ("FT+random", 0.9, 0): (0.57, -0.05, 0.61),
        ("FT+MIGU", 0.9, 1): (0.56, 0.00, 0.57),
        ("FT+random", 0.9, 1): (0.56, -0.08, 0.62),
        ("FT+MIGU", 0.5, 0): (0.50, -0.10, 0.60),  # no FT+random at T = 0.5: the point is left out
        ("FT", None, 0): (0.49, -0.12, 0.58),
        ("FT", None, 1): (0.51, -0.10, 0.60),
    }
    for (variant, t, seed), m in values.items():
        cfg = {"seed": seed, "data": {"order": 1}, "eval": {"label_space": "options"}}
        cfg["migu"] = {"enabled": variant != "FT", **({"threshold": t} if t is not None else {})}
        point = tmp_path / ("controls" if t is None else "threshold") / f"T={t}+seed={seed}"
        point.mkdir(parents=True, exist_ok=True)
        names = sorted(v for v, tt, ss in values if (tt, ss) == (t, seed))
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": {n: {} for n in names}}))
        write_fake_run(point / variant, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]], metrics=metrics(*m))
    runs_t = load_runs([tmp_path / "threshold"])[0]
    runs_c = load_runs([tmp_path / "controls"])[0]
    lines = threshold_table(threshold_points(runs_t, runs_c)).splitlines()
    table = "\n".join(lines)
    assert _cells(table, "0 (FT)")[:3] == ["0, 1", "50.0 ± 1.4", "50.0 ± 1.4"]
    row = ["0.9", *_cells(table, "0.9")]
    # AA 58/56 vs 57/56 -> +1, 0; BWT -1/0 vs -5/-8 -> +4, +8; LA 59/57 vs 61/62 -> -2, -5.
    assert row == [
        "0.9", "0, 1", "57.0 ± 1.4", "56.5 ± 0.7", "+0.5 ± 0.7", "-0.5 ± 0.7", "-6.5 ± 2.1", "+6.0 ± 2.8",
        "58.0 ± 1.4", "61.5 ± 0.7", "-3.5 ± 2.1",
    ]  # fmt: skip
    assert not any(line.startswith("| 0.5 ") for line in lines)


def test_long_controls_at_fewer_seeds_remove_no_seed_of_the_main_pair(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import CORE, LONG_CORE, complete_pairs

    from migu.report.collect import load_runs

    ran = {0: ("FT", "FT+MIGU", "FT+random", "FT-lr3e-5"), 1: ("FT", "FT+MIGU")}
    for seed, names in ran.items():
        point = tmp_path / f"seed={seed}"
        point.mkdir()
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": {n: {} for n in names}}))
        for name in names:
            write_fake_run(
                point / name, {"seed": seed, "data": {"order": 4}}, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]]
            )
    runs = load_runs([tmp_path])[0]
    kept = sorted((r.variant, r.seed) for r in complete_pairs(runs, LONG_CORE))
    assert kept == sorted((n, s) for s, names in ran.items() for n in names)
    # Under the controls' rule (the random mask is core) seed 1 would be dropped.
    assert {s for _, s in ((r.variant, r.seed) for r in complete_pairs(runs, CORE))} == {0}


def test_rows_updated_table_skips_runs_and_tasks_without_the_record(tmp_path):
    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import rows_updated_table

    from migu.report.collect import load_runs

    records = {"FT": [None, None, None], "FT+MIGU": [0.4, None, 0.5], "FT+random": [1.0, 0.9, 1.0]}
    (tmp_path / "config.yaml").write_text("variants: {FT: {}, FT+MIGU: {}, FT+random: {}}\n")
    for name, rec in records.items():
        cfg = {"seed": 0, "data": {"order": 4}}
        write_fake_run(
            tmp_path / name, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]], metrics={"rows_updated_per_task": rec}
        )
    lines = rows_updated_table(load_runs([tmp_path])[0]).splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in lines[4:]}
    assert rows == {
        "FT+MIGU, order 4, seed 0": ["2", "45.0", "40.0", "50.0"],  # the resumed task (None) is left out
        "FT+random, order 4, seed 0": ["3", "96.7", "90.0", "100.0"],
    }


def test_repeat_table_reports_the_largest_matrix_difference_from_the_earlier_run(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import repeat_table

    from migu.report.collect import load_runs

    def write(folder: str, variant: str, t: float, seed: int, matrix: list, aa: float) -> None:
        point = tmp_path / folder / f"T={t}+seed={seed}"
        point.mkdir(parents=True, exist_ok=True)
        listed = (
            yaml.safe_load((point / "config.yaml").read_text()) if (point / "config.yaml").exists() else {}
        )
        listed.setdefault("variants", {})[variant] = {}  # the sweep lists every variant of the point
        (point / "config.yaml").write_text(yaml.safe_dump(listed))
        cfg = {"seed": seed, "data": {"order": 1}, "migu": {"enabled": True, "threshold": t}}
        write_fake_run(point / variant, cfg, matrix, metrics={"final_average_accuracy": aa})

    same = [[0.1, 0.2], [0.9, None], [0.6, 0.8]]
    write("earlier", "FT+MIGU", 0.9, 0, same, 0.7)
    write("again", "FT+MIGU", 0.9, 0, same, 0.7)  # repeated to the digit
    write("earlier", "FT+random", 0.9, 0, [[0.1, 0.2], [0.9, None], [0.6, 0.8]], 0.7)
    write("again", "FT+random", 0.9, 0, [[0.1, 0.2], [0.9, None], [0.63, 0.8]], 0.715)
    write("again", "FT+random", 0.9, 1, same, 0.7)  # no earlier run at seed 1: left out
    write("earlier", "FT+random", 0.5, 0, same, 0.7)  # another threshold: not a match
    table = repeat_table(load_runs([tmp_path / "again"])[0], load_runs([tmp_path / "earlier"])[0])
    assert _cells(table, "FT+MIGU, T 0.9, seed 0") == ["70.0", "70.0", "0.0"]
    assert _cells(table, "FT+random, T 0.9, seed 0") == ["70.0", "71.5", "3.0"]
    assert "seed 1" not in table and "T 0.5" not in table
    # An entry evaluated in one run and not the other means the two runs did different things.
    write("again", "FT+random", 0.5, 0, [[0.1, 0.2], [0.9, 0.1], [0.6, 0.8]], 0.7)
    with pytest.raises(SystemExit, match="different entries"):
        repeat_table(load_runs([tmp_path / "again"])[0], load_runs([tmp_path / "earlier"])[0])


def test_every_experiment_section_has_its_tables_and_the_doc_marks_them():
    """Each table the script knows is marked in docs/results.md, and the reverse (render checks it)."""
    import re

    from results_doc import DOC, TABLES

    marked = set(re.findall(r"<!-- table: ([\w-]+) -->", DOC.read_text(encoding="utf-8")))
    assert {f"generative-{k}" for k in ("aa", "la", "bwt", "per-task", "sides")} <= set(TABLES)
    assert marked == set(TABLES), sorted(marked ^ set(TABLES))


def test_answers_table_averages_the_final_answer_kinds_over_seeds(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import answers_table

    from migu.report.collect import load_runs

    finals = {  # (variant, seed) -> final other-task share, final no-label share (None: not recorded)
        ("FT", 0): (0.30, 0.10),
        ("FT", 1): (0.50, 0.00),
        ("FT+MIGU", 0): (0.10, 0.05),
        ("FT+MIGU", 1): (None, None),  # a run from before the record: left out, not counted as 0
    }
    for (variant, seed), (other, none) in finals.items():
        point = tmp_path / f"seed={seed}"
        point.mkdir(exist_ok=True)
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": {"FT": {}, "FT+MIGU": {}}}))
        metrics = {"final_answers_other_task_label": other, "final_answers_no_label": none}
        cfg = {"seed": seed, "data": {"order": 1}}
        write_fake_run(point / variant, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]], metrics=metrics)
    table = answers_table(load_runs([tmp_path])[0])
    assert _cells(table, "FT") == ["1", "2", "40.0 ± 14.1", "5.0 ± 7.1"]
    assert _cells(table, "FT+MIGU") == ["1", "1", "10.0", "5.0"]


def test_cpt_tables_average_over_seeds_and_pair_rows_by_seed(tmp_path):
    import json

    import yaml
    from results_doc import cpt_paired_table, cpt_runs, cpt_table

    def cell(acc: float, f1: float) -> dict:
        return {"accuracy": acc, "macro_f1": f1}

    values = {  # seed -> row -> (news acc, news F1, tweets acc, tweets F1)
        0: {
            "base": (0.50, 0.40, 0.60, 0.60),
            "CPT": (0.60, 0.50, 0.60, 0.50),
            "CPT+MIGU": (0.70, 0.60, 0.60, 0.50),
        },
        1: {
            "base": (0.52, 0.40, 0.62, 0.60),
            "CPT": (0.56, 0.50, 0.60, 0.50),
            "CPT+MIGU": (0.56, 0.50, 0.62, 0.50),
        },
    }
    for seed, rows in values.items():
        run = tmp_path / f"seed{seed}"
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed}))
        table = {}
        for row, (na, nf, ta, tf) in rows.items():
            table[row] = {
                "news": cell(na, nf),
                "tweets": cell(ta, tf),
                "mean": cell((na + ta) / 2, (nf + tf) / 2),
            }
        (run / "results.json").write_text(json.dumps({"domains": ["news", "tweets"], "rows": table}))
    (tmp_path / "killed").mkdir()  # a run without results.json has not finished: left out
    (tmp_path / "killed" / "config.yaml").write_text(yaml.safe_dump({"seed": 2}))
    runs = cpt_runs(tmp_path)
    assert [seed for seed, _ in runs] == [0, 1]
    table = cpt_table(runs)
    assert _cells(table, "base") == [
        "51.0 ± 1.4 / 40.0 ± 0.0",
        "61.0 ± 1.4 / 60.0 ± 0.0",
        "56.0 ± 1.4 / 50.0 ± 0.0",
    ]
    assert _cells(table, "CPT+MIGU")[0] == "63.0 ± 9.9 / 55.0 ± 7.1"
    paired = cpt_paired_table(runs)
    # Mean accuracy: CPT+MIGU 65.0, 59.0; CPT 60.0, 58.0 -> +5.0, +1.0. Macro-F1: 55, 50 vs 50, 50 -> +5, 0.
    assert _cells(paired, "CPT+MIGU - CPT") == ["2", "+3.0 ± 2.8", "+2.5 ± 3.5", "+5.0, +1.0"]
    assert cpt_runs(tmp_path / "nothing here") == [] and cpt_table([]) == "(no finished run yet)"


def test_official_parts_are_named_by_the_keys_they_set_and_placed_between_ours_and_official(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import official_parts, sides_summary_table

    from migu.report.collect import load_runs

    official = {"targets": "all-linear", "skip_first_task": True, "keep_rule": "quantile"}
    controls = {"LoRA+MIGU": {}, "LoRA+MIGU(official)": official}
    aa = {("LoRA+MIGU", 0): 0.50, ("LoRA+MIGU(official)", 0): 0.40, ("LoRA+MIGU", 1): 0.60}
    for seed in (0, 1):  # seed 1: the official run did not finish, so the part run there has no pair
        point = tmp_path / "controls" / f"seed={seed}"
        point.mkdir(parents=True)
        variants = {n: {f"migu.{k}": v for k, v in o.items()} for n, o in controls.items()}
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": variants}))
        for name, keys in controls.items():
            if (name, seed) in aa:
                cfg = {"seed": seed, "data": {"order": 1}, "migu": {"targets": "default", **keys}}
                write_fake_run(
                    point / name,
                    cfg,
                    [[0.1, 0.1], [0.6, 0.1], [0.5, 0.6]],
                    metrics={
                        "final_average_accuracy": aa[(name, seed)],
                        "learning_accuracy": 0.6,
                        "backward_transfer": -0.1,
                    },
                )
        part = tmp_path / "parts" / f"seed={seed}"
        part.mkdir(parents=True)
        (part / "config.yaml").write_text(yaml.safe_dump({"variants": {"LoRA+MIGU": {}}}))
        cfg = {"seed": seed, "data": {"order": 1}, "migu": {"targets": "all-linear"}}
        write_fake_run(
            part / "LoRA+MIGU",
            cfg,
            [[0.1, 0.1], [0.6, 0.1], [0.5, 0.6]],
            metrics={"final_average_accuracy": 0.42, "learning_accuracy": 0.55, "backward_transfer": -0.1},
        )
    parts, _ = load_runs([tmp_path / "parts"])
    ours, _ = load_runs([tmp_path / "controls"])
    runs, pairs = official_parts(parts, ours)
    name = "LoRA+MIGU, targets=all-linear"  # the one key the part run changed against ours
    assert pairs == [(name, "LoRA+MIGU"), ("LoRA+MIGU(official)", name)]
    assert sorted((r.variant, r.seed) for r in runs) == sorted(
        [(name, 0), ("LoRA+MIGU", 0), ("LoRA+MIGU(official)", 0)]
    )
    table = sides_summary_table([("s", runs, pairs)], "title")
    # AA: part 42.0 - ours 50.0 = -8.0; official 40.0 - part 42.0 = -2.0; learning 55 - 60 = -5.0.
    assert _cells(table, "s")[:6] == [f"{name} - LoRA+MIGU", "1", "-10.0", "-5.0", "+0.0", "-8.0"]
    assert f"| s | LoRA+MIGU(official) - {name} | 1 | -10.0 | +5.0 | +0.0 | -2.0 |" in table


def test_instruct_tables_read_the_probe_before_training_and_after_the_last_task(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import instruct_paired_table, instruct_table

    from migu.eval.general import general_metrics
    from migu.report.collect import load_runs

    # (variant, seed) -> (AA, learning accuracy, BWT), COPA accuracy before, after task a, after task b
    runs = {
        ("LoRA", 0): ((0.60, 0.65, -0.05), (0.636, 0.500, 0.612)),
        ("LoRA", 1): ((0.62, 0.64, -0.03), (0.636, 0.700, 0.618)),
        ("LoRA+MIGU", 0): ((0.55, 0.60, -0.08), (0.636, 0.500, 0.626)),
        ("LoRA+MIGU", 1): ((0.57, 0.58, -0.02), (0.636, 0.700, 0.640)),
    }
    for (variant, seed), ((aa, la, bwt), copa) in runs.items():
        point = tmp_path / f"seed={seed}"
        point.mkdir(exist_ok=True)
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": {"LoRA": {}, "LoRA+MIGU": {}}}))
        # the probe keys as the engine writes them to metrics.json (row 0: before training)
        probe_rows = [{"copa": {"acc": acc, "acc_norm": 0.0, "n": 500}} for acc in copa]
        metrics = {"final_average_accuracy": aa, "learning_accuracy": la, "backward_transfer": bwt}
        metrics.update(general_metrics(probe_rows, ["copa"]))
        write_fake_run(point / variant, {"seed": seed}, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]], metrics=metrics)
    loaded = load_runs([tmp_path])[0]

    table = instruct_table(loaded)
    # AA, LA, BWT, copa before, copa after the last task (not after task a), change; seeds
    assert _cells(table, "LoRA") == [
        "61.0 ± 1.4",
        "64.5 ± 0.7",
        "-4.0 ± 1.4",
        "63.6 ± 0.0",
        "61.5 ± 0.4",
        "-2.1 ± 0.4",
        "0, 1",
    ]
    assert _cells(table, "LoRA+MIGU")[4:] == ["63.3 ± 1.0", "-0.3 ± 1.0", "0, 1"]

    paired = instruct_paired_table(loaded, (("LoRA+MIGU", "LoRA"),))
    rows = {
        line.split("|")[2].strip(): [c.strip() for c in line.split("|")[3:-1]]
        for line in paired.splitlines()[4:]
    }
    assert rows["AA"] == ["2", "-5.0 ± 0.0", "0 / 0 / 2", "0.500", "-5.0, -5.0"]
    assert rows["BWT"] == ["2", "-1.0 ± 2.8", "1 / 0 / 1", "1.000", "-3.0, +1.0"]
    assert rows["copa after the last task"] == ["2", "+1.8 ± 0.6", "2 / 0 / 0", "0.500", "+1.4, +2.2"]
