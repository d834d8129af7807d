"""Evaluation: answer scoring and continual-learning metrics.

- :mod:`migu.eval.text`: exact match after the paper's normalization (lower-case, no punctuation,
  collapsed whitespace), as the MIGU / O-LoRA evaluation scores generated answers.
- :mod:`migu.eval.metrics`: pure functions of the accuracy matrix (final average accuracy, average
  incremental accuracy, backward and forward transfer, forgetting, learning accuracy).
- :mod:`migu.eval.multiple_choice`: log-likelihood accuracy on multiple-choice items (HellaSwag,
  ARC, WinoGrande, COPA), the forgetting check of instruction tuning.
"""

from migu.eval.metrics import (
    average_incremental_accuracy,
    backward_transfer,
    final_average_accuracy,
    forgetting,
    forward_transfer,
    learning_accuracy,
    summarize,
)
from migu.eval.multiple_choice import multiple_choice_accuracy
from migu.eval.text import exact_match, exact_match_accuracy, normalize_answer

__all__ = [
    "average_incremental_accuracy",
    "backward_transfer",
    "exact_match",
    "exact_match_accuracy",
    "final_average_accuracy",
    "forgetting",
    "forward_transfer",
    "learning_accuracy",
    "multiple_choice_accuracy",
    "normalize_answer",
    "summarize",
]
