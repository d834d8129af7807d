"""A text-classification task and the prompt format of the MIGU / O-LoRA code.

A :class:`Task` is a plain, immutable description of one task in a continual-learning sequence:
its label strings, its train and test records, and the instruction that tells a model what to do.
Every loader in :mod:`migu.data` returns one (the CL_Benchmark folder loader in
:mod:`migu.data.cl_benchmark`, the offline packaged tasks in :mod:`migu.data.packaged`).

:func:`format_prompt` turns a record's sentence into the exact source text that the paper's code
feeds to the model, so that results are comparable with the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ANSWER_PREFIX",
    "Item",
    "TASK_TYPES_WITHOUT_OPTIONS",
    "Task",
    "TaskDataError",
    "format_prompt",
]


class TaskDataError(ValueError):
    """A task cannot be loaded: unknown name, missing or malformed file. The message names the fix."""


#: What the prompt ends with; the target (the label text) follows it.
ANSWER_PREFIX = "Answer:"

#: Task types whose prompt has no "Option: ..." line. O-LoRA's ``load_COPA_dataset`` builds the COPA
#: prompt as ``"{0}\nAnswer:"`` only: the sentence itself already says "Choose one between A and B."
#: and lists both alternatives.
TASK_TYPES_WITHOUT_OPTIONS: frozenset[str] = frozenset({"COPA"})


@dataclass(frozen=True)
class Task:
    """One text-classification task of a continual-learning sequence.

    The dataclass is frozen, but ``train`` and ``test`` are ordinary lists: treat them as read-only,
    since loaders may share them between callers.

    Attributes:
        name: Name of the task, e.g. ``"dbpedia"``; written into the prompt after ``Dataset:``.
        labels: The label strings, in a fixed order (the order of the prompt's option list).
        train: Training records ``{"sentence": str, "label": str}`` with ``label`` in ``labels``.
        test: Test records of the same form.
        instruction: What the model is asked, e.g. ``"What is the topic of the following paragraph?
            Choose one from the option.\\n"``; may be empty (COPA has none in the paper's code).
        source: Where the data came from (a folder, a package file), for reports.
        task_type: The paper's ``Task:`` field: ``"TC"`` (topic classification), ``"SC"``
            (sentiment), ``"NLI"``, ``"QQP"``, ``"BoolQA"``, ``"MultiRC"``, ``"WiC"``, ``"COPA"``, or
            any other tag for user tasks.

    Raises:
        ValueError: If ``name`` or ``task_type`` is empty, or ``labels`` is empty, has duplicates or
            holds something other than non-empty strings.
    """

    name: str
    labels: tuple[str, ...]
    train: list[dict[str, str]]
    test: list[dict[str, str]]
    instruction: str
    source: str = ""
    task_type: str = "TC"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Task name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.task_type, str) or not self.task_type:
            raise ValueError(
                f"Task {self.name!r}: task_type must be a non-empty string, got {self.task_type!r}"
            )
        # A list is accepted and stored as a tuple, so that the label order cannot change later.
        labels = tuple(self.labels)
        if not labels or not all(isinstance(label, str) and label for label in labels):
            raise ValueError(f"Task {self.name!r}: labels must be non-empty strings, got {self.labels!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"Task {self.name!r}: duplicate labels in {labels!r}")
        object.__setattr__(self, "labels", labels)
        if not isinstance(self.instruction, str):
            raise ValueError(f"Task {self.name!r}: instruction must be a string, got {self.instruction!r}")


#: One example with the task it belongs to: ``(task, record)``. The engine batches these; the task
#: gives the prompt's instruction and options, never a task id to the model.
Item = tuple[Task, dict]


def format_prompt(task: Task, sentence: str, *, dataset_name: str | None = None) -> str:
    """Build the model input for one sentence, exactly as the paper's code does.

    The format is::

        "Task:" + task_type + "\\n" + "Dataset:" + dataset_name + "\\n"
        + instruction + "Option: " + ", ".join(labels) + " \\n" + sentence + "\\nAnswer:"

    e.g. ``"Task:TC\\nDataset:dbpedia\\nWhat is the topic ...? Choose one from the option.\\n"
    "Option: Company, Educational Institution, ... \\n<sentence>\\nAnswer:"``. Note the space
    before the newline that ends the option line; the target is the bare label text.

    Matched against the official code (cmnfriend/O-LoRA, identical in wenyudu/MIGU):
    ``src/uie_dataset_lora.py`` (MIGU: ``src/uie_dataset.py``), ``load_TC_dataset`` and siblings,
    build ``instruction + "Option: " + ", ".join(labels) + " \\n" + "{0}" + "\\nAnswer:"``, and
    ``src/uie_collator.py`` ``DataCollatorForUIE.get_instruction`` prepends
    ``"Task:" + Task + "\\n"`` and ``"Dataset:" + Dataset + "\\n"`` (the MIGU scripts run with
    ``--add_task_name True --add_dataset_name True``) before filling ``{0}`` with the sentence.
    The collator fills ``{0}`` with ``str.format``; plain concatenation here gives the same text
    without ``str.format``'s failure on braces.

    Two cases the official instruction texts do not cover:

    - An instruction that does not end with a newline (e.g. the packaged tasks' one-sentence
      instructions) gets one appended, so that ``Option:`` always starts its own line. An empty
      instruction adds nothing.
    - Task types in :data:`TASK_TYPES_WITHOUT_OPTIONS` (COPA) have no option line, as in O-LoRA's
      ``load_COPA_dataset``: their prompt is ``"Task:COPA\\nDataset:...\\n" + instruction +
      sentence + "\\nAnswer:"`` (the CL_Benchmark COPA instruction is empty).

    Args:
        task: The task; its ``task_type``, ``name``, ``instruction`` and ``labels`` are used.
        sentence: The record's ``"sentence"`` text, inserted verbatim.
        dataset_name: Name written after ``Dataset:`` instead of ``task.name``. The official
            configs use the O-LoRA folder names (``IMDB``, ``SST-2``, ``MNLI``, ...; see
            :data:`migu.data.cl_benchmark.OLORA_DATASET_NAMES`), which differ from ours in case.

    Returns:
        The prompt, ending with ``"\\nAnswer:"``.
    """
    name = task.name if dataset_name is None else dataset_name
    instruction = task.instruction
    if instruction and not instruction.endswith("\n"):
        instruction += "\n"
    options = (
        "" if task.task_type in TASK_TYPES_WITHOUT_OPTIONS else "Option: " + ", ".join(task.labels) + " \n"
    )
    return f"Task:{task.task_type}\nDataset:{name}\n{instruction}{options}{sentence}\n{ANSWER_PREFIX}"
