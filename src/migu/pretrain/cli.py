"""``migu pretrain``: continual pre-training on domain corpora, then end-task fine-tuning.

migu pretrain                                  # the default: SmolLM2-135M-Instruct, news -> movies -> tweets, CPT vs CPT+MIGU
migu pretrain config.yaml pretrain.lr=1e-4     # a config file with key=value overrides (values are YAML)
migu pretrain domains=[news,tweets] variants={}    # the default with overrides (one row: CPT)
migu pretrain --preset cpu-minilm-mlm          # a named preset (see --list)
migu pretrain --resume runs/pretrain           # continue a killed run
migu pretrain --print-config                   # the resolved config as YAML, nothing run
migu pretrain --list                           # packaged domains and presets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["main_pretrain"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="migu pretrain",
        description="Continual pre-training (masked LM for encoders, causal LM for decoders) on domain "
        "corpora, then a copy of the final model fine-tuned per domain on its end task.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    parser.add_argument(
        "args", nargs="*", metavar="[CONFIG] [key=value ...]", help="YAML config and overrides"
    )
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR")
    parser.add_argument("--preset", metavar="NAME", help="start from a named preset (see --list)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--list", action="store_true", help="packaged domains and presets")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def _list() -> None:
    from migu.pretrain.config import available_pretrain_presets
    from migu.pretrain.corpora import PACKAGED_DOMAINS

    print("packaged domains (corpus and end task from migu.data.packaged):")
    for name, task in PACKAGED_DOMAINS.items():
        print(f"  {name:8s} {task}")
    print("presets:")
    for name, line in available_pretrain_presets().items():
        print(f"  {name}: {line}")


def main_pretrain(args: list[str] | None = None) -> int:
    """Entry point of ``migu pretrain`` (``args``: what follows ``pretrain`` on the command line).

    Returns:
        0 on success, 2 for a bad config / existing run directory / missing model or run, 1 for
        other user-fixable errors (missing data package, bad data files).
    """
    from migu.exit_codes import run_command

    ns = _parser().parse_args(args)
    return run_command("migu pretrain", lambda: _pretrain(ns), resume="migu pretrain --resume RUN_DIR")


def _pretrain(ns: argparse.Namespace) -> int:
    """The body of ``migu pretrain``: list, resume, print the config, or run."""
    import yaml

    if ns.list:
        _list()
        return 0
    from migu.pretrain.config import load_pretrain_config
    from migu.pretrain.runner import resume_pretrain, run_pretrain
    from migu.pretrain.summary import format_results

    if ns.resume:
        if ns.args or ns.preset:
            print("migu pretrain --resume takes no config, preset or overrides.", file=sys.stderr)
            return 2
        result = resume_pretrain(ns.resume, show_progress=not ns.no_progress)
    else:
        path = ns.args[0] if ns.args and "=" not in ns.args[0] else None
        overrides = ns.args[1:] if path is not None else ns.args
        cfg = load_pretrain_config(path, overrides, preset=ns.preset)
        if cfg.name is None:
            cfg = cfg.with_overrides({"name": Path(path).stem if path else (ns.preset or "pretrain")})
        if ns.print_config:
            print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
            return 0
        result = run_pretrain(cfg, show_progress=not ns.no_progress)
    print(format_results(result.data, result.run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main_pretrain())
