"""The report of tiny runs: every section and image, offline, and rendered by headless Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess

import pytest

from migu.cli import main
from migu.report import SECTION_IDS

# Figures each section must hold for the tiny sweeps: 3 groups (FT, FT+MIGU at T=0.3 and 0.7), 2 seeds.
MIN_IMAGES = {
    "matrices": 3,
    "per-task": 1,  # one figure: a panel per task, the groups overlaid
    "seeds": 1,
    "threshold": 2,
    "similarity": 7,
    "magnitudes": 3,
    "cost": 1,
}
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
# No network on CI machines: nothing in the background may try to reach one.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
]


def _pngs(html: str) -> list[bytes]:
    return [
        base64.b64decode(b)
        for b in re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([^"]+)">', html)
    ]


def test_report_has_every_section_and_every_image_is_a_png(tiny_report):
    from PIL import Image

    html = tiny_report.html.read_text(encoding="utf-8")
    sections = {s.id: s for s in tiny_report.sections}
    assert list(sections) == list(SECTION_IDS)
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in html and f'href="#{sid}"' in html
    for sid, n in MIN_IMAGES.items():
        assert len(sections[sid].images) >= n, sid
    pngs = _pngs(html)
    assert len(pngs) == sum(len(s.images) for s in tiny_report.sections)
    for data in pngs:
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    # Self-contained and offline: nothing to fetch, no script.
    assert "<script" not in html and "<link" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert {g.label: len(g.runs) for g in tiny_report.groups} == {
        "FT": 2,
        "FT+MIGU T=0.3": 2,
        "FT+MIGU T=0.7": 2,
    }
    md = tiny_report.markdown.read_text(encoding="utf-8")
    for s in tiny_report.sections:
        assert f"## {s.title}" in md
    assert "| FT+MIGU T=0.7 | 2 |" in md


def test_similarity_uses_one_threshold_for_runs_without_migu_and_compares_all_layers(tiny_report):
    sim = next(s for s in tiny_report.sections if s.id == "similarity")
    table = next(i for i in sim.items if type(i).__name__ == "Table")
    rows = {r[0]: r for r in table.rows}
    # FT has no threshold of its own: it takes the first MIGU run's (0.3); MIGU runs keep theirs.
    assert rows["FT (seed 0)"][1] == "0.3" and rows["FT+MIGU T=0.7 (seed 0)"][1] == "0.7"
    assert all(r[2] == "8" and r[3] == "12" for r in table.rows)  # 8 samples; 2 BERT blocks x 6 linears
    assert all(0.0 <= float(r[4]) <= 1.0 for r in table.rows)


def test_cli_report_without_analysis_and_a_wrong_path(tiny_sweeps, tmp_path, capsys):
    assert main(["report", str(tiny_sweeps["ft"]), "--out", str(tmp_path), "--no-analysis"]) == 0
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Not computed (--no-analysis)." in html and "No curve: no run uses MIGU" in html
    assert "written:" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a run directory (no state.json)" in capsys.readouterr().err


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here: apt-get install -y chromium chromium-driver")
def test_page_renders_in_headless_chromium_without_console_errors(tiny_report, tmp_path):
    url = tiny_report.html.resolve().as_uri()
    shot = tmp_path / "report.png"

    def chromium(*args: str) -> subprocess.CompletedProcess:
        profile = tmp_path / f"profile{len(list(tmp_path.iterdir()))}"  # a fresh profile per start
        cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    dom = chromium("--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    for sid in SECTION_IDS:
        assert f'<section id="{sid}">' in dom.stdout
    assert len(re.findall(r"<img ", dom.stdout)) == len(_pngs(tiny_report.html.read_text(encoding="utf-8")))
    snap = chromium("--window-size=1280,4000", f"--screenshot={shot}")
    assert snap.returncode == 0, snap.stderr[-2000:]
    for proc in (dom, snap):
        # Chromium writes the page's console messages and uncaught errors to stderr as "CONSOLE" lines;
        # the page has no script, so any of them is an error.
        bad = [ln for ln in proc.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
        assert not bad, bad
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_runs_without_checkpoint_unfinished_runs_and_recorded_memory(tmp_path):
    from fake_runs import write_fake_run

    from migu.report import ReportOptions, build_report

    matrix = [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]]
    for seed in (0, 1):
        cfg = {"seed": seed, "migu": {"enabled": True, "threshold": 0.7}}
        metrics = {"final_average_accuracy": 0.7, "seconds_per_step": 0.5 + seed, "peak_memory_mb": 100.0}
        write_fake_run(tmp_path / "runs" / f"m{seed}", cfg, matrix, metrics=metrics)
    cfg = {"seed": 0, "migu": {"enabled": False}}
    write_fake_run(
        tmp_path / "runs" / "ft", cfg, matrix[:2], status="running", metrics={"seconds_per_step": 0.5}
    )
    result = build_report([tmp_path / "runs"], tmp_path / "out", ReportOptions(include_unfinished=True))
    sections = {s.id: s for s in result.sections}
    notes = " ".join(i.text for i in sections["similarity"].items if hasattr(i, "text"))
    assert "FT: no finished run with a checkpoint" in notes
    assert len(sections["per-task"].images) == 1  # both groups on one figure; FT's line stops early
    cost = next(i for i in sections["cost"].items if hasattr(i, "headers"))
    assert "peak_memory_mb" in cost.headers
    row = next(r for r in cost.rows if r[0] == "FT+MIGU")
    assert row[4] == "1.0000 ± 0.7071" and row[5] == "+100.0% vs FT"


def test_metrics_table_shows_the_share_of_other_task_answers_where_recorded(tmp_path):
    from fake_runs import write_fake_run

    from migu.report import ReportOptions, build_report

    matrix = [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]]
    for seed, share in ((0, 0.25), (1, 0.35)):
        metrics = {"final_average_accuracy": 0.7, "final_answers_other_task_label": share}
        write_fake_run(
            tmp_path / "runs" / f"m{seed}", {"seed": seed, "migu": {"enabled": True}}, matrix, metrics=metrics
        )
    write_fake_run(tmp_path / "runs" / "ft", {"seed": 0, "migu": {"enabled": False}}, matrix)  # no record
    result = build_report([tmp_path / "runs"], tmp_path / "out", ReportOptions(analysis=False))
    per_group, per_run = next(s for s in result.sections if s.id == "metrics").items
    column = per_group.headers.index("other-task answers")
    assert {r[0]: r[column] for r in per_group.rows} == {"FT+MIGU": "30.0 ± 7.1", "FT": "-"}
    assert sorted(r[column] for r in per_run.rows) == ["-", "25.0", "35.0"]


def test_metrics_table_shows_each_general_probe_before_after_and_its_forgetting(tmp_path):
    from fake_runs import write_fake_run

    from migu.eval.general import general_metrics
    from migu.report import ReportOptions, build_report

    matrix = [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]]
    for seed, copa in ((0, (0.64, 0.70, 0.60)), (1, (0.64, 0.50, 0.62))):  # before, after a, after b
        metrics = {"final_average_accuracy": 0.7}
        metrics.update(
            general_metrics([{"copa": {"acc": a, "acc_norm": a, "n": 500}} for a in copa], ["copa"])
        )
        write_fake_run(
            tmp_path / "runs" / f"m{seed}", {"seed": seed, "migu": {"enabled": True}}, matrix, metrics=metrics
        )
    write_fake_run(tmp_path / "runs" / "ft", {"seed": 0, "migu": {"enabled": False}}, matrix)  # no probe
    result = build_report([tmp_path / "runs"], tmp_path / "out", ReportOptions(analysis=False))
    per_group, _ = next(s for s in result.sections if s.id == "metrics").items
    cols = [per_group.headers.index(h) for h in ("copa before", "copa after", "copa forgetting")]
    rows = {r[0]: [r[c] for c in cols] for r in per_group.rows}
    # after = the last task's row (60, 62), not the middle one; forgetting = before - after (4, 2)
    assert rows == {"FT+MIGU": ["64.0 ± 0.0", "61.0 ± 1.4", "3.0 ± 1.4"], "FT": ["-", "-", "-"]}
