"""The ``migu`` command line.

migu demo                 # FT vs FT+MIGU on real offline data (all-MiniLM-L6-v2), ~5 min on 2 CPU cores
migu demo --steps 20 --tasks rotten_tomatoes,tweet_sentiment
migu version
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from migu.data.packaged import available_packaged_tasks
    from migu.demo import DemoSettings, run_demo

    tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = [t for t in tasks if t not in available_packaged_tasks()]
    if len(tasks) < 2 or unknown:
        print(
            f"migu demo: --tasks needs at least 2 of {available_packaged_tasks()}; got {list(tasks)}"
            + (f" (unknown: {unknown})" if unknown else ""),
            file=sys.stderr,
        )
        return 2
    if not 0.0 <= args.threshold < 1.0:
        print(f"migu demo: --threshold must be in [0, 1), got {args.threshold}", file=sys.stderr)
        return 2
    if args.steps < 1:
        print(f"migu demo: --steps must be at least 1, got {args.steps}", file=sys.stderr)
        return 2
    settings = DemoSettings(
        tasks=tasks,
        steps_per_task=args.steps,
        threshold=args.threshold,
        lr=args.lr,
        seed=args.seed,
        eval_examples=args.eval_examples,
    )
    run_demo(settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``migu`` console script."""
    parser = argparse.ArgumentParser(
        prog="migu", description="Continual learning of language models with MIGU."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    from migu.demo import DemoSettings

    d = DemoSettings()
    demo = sub.add_parser("demo", help="FT vs FT+MIGU on real offline data; prints accuracy matrices")
    demo.add_argument("--tasks", default=",".join(d.tasks), help="comma-separated packaged task names")
    demo.add_argument("--steps", type=int, default=d.steps_per_task, help="optimizer steps per task")
    demo.add_argument("--threshold", type=float, default=d.threshold, help="MIGU threshold T in [0, 1)")
    demo.add_argument("--lr", type=float, default=d.lr)
    demo.add_argument("--eval-examples", type=int, default=d.eval_examples, help="test examples per task")
    demo.add_argument("--seed", type=int, default=d.seed)
    demo.set_defaults(func=_demo)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda a: print(__import__("migu").__version__) or 0)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ImportError as err:  # a missing data/model package: the message says what to install
        print(f"migu: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
