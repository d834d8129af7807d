"""Named task sequences (the paper's orders 1-7, benchmarks ``standard`` and ``long``) and presets."""

from migu.benchmarks.orders import BENCHMARKS, ORDERS, benchmark_orders, order_tasks
from migu.benchmarks.presets import available_presets, load_preset

__all__ = ["BENCHMARKS", "ORDERS", "available_presets", "benchmark_orders", "load_preset", "order_tasks"]
