"""The paper's task orders (MIGU, arXiv 2406.17245, Table 7) and the named benchmarks built on them.

Orders 1-3 form the Standard CL benchmark (4 tasks), orders 4-6 the Long sequence (15 tasks), both
on the O-LoRA CL_Benchmark folder; order 7 is the continual pre-training domains of DAS.
"""

from __future__ import annotations

__all__ = ["BENCHMARKS", "ORDERS", "benchmark_orders", "order_tasks"]

ORDERS: dict[int, tuple[str, ...]] = {
    1: ("dbpedia", "amazon", "yahoo", "agnews"),
    2: ("dbpedia", "amazon", "agnews", "yahoo"),
    3: ("yahoo", "amazon", "agnews", "dbpedia"),
    4: ("mnli", "cb", "wic", "copa", "qqp", "boolq", "rte", "imdb", "yelp", "amazon", "sst2", "dbpedia",
        "agnews", "multirc", "yahoo"),
    5: ("multirc", "boolq", "wic", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia", "agnews",
        "yelp", "amazon", "yahoo"),
    6: ("yelp", "amazon", "mnli", "cb", "copa", "qqp", "rte", "imdb", "sst2", "dbpedia", "agnews", "yahoo",
        "multirc", "boolq", "wic"),
    7: ("restaurant", "acl", "ai", "phone", "pubmed", "camera"),
}  # fmt: skip

#: benchmark name -> its orders
BENCHMARKS: dict[str, tuple[int, ...]] = {"standard": (1, 2, 3), "long": (4, 5, 6)}


def order_tasks(order: int) -> list[str]:
    """Task names of the paper's order ``order`` (1-7), in training order.

    Raises:
        ValueError: unknown order (the message lists the known ones).
    """
    if order not in ORDERS:
        raise ValueError(f"order {order!r} is not one of the paper's orders {sorted(ORDERS)}.")
    return list(ORDERS[order])


def benchmark_orders(name: str) -> tuple[int, ...]:
    """The orders of a named benchmark (``"standard"``: 1-3, ``"long"``: 4-6)."""
    if name not in BENCHMARKS:
        raise ValueError(f"benchmark {name!r} is not one of {sorted(BENCHMARKS)}.")
    return BENCHMARKS[name]
