"""Tests for migu.data.multiple_choice: loaders of HellaSwag, ARC, WinoGrande and COPA files.

Each format is checked on small files written here (JSON, JSON Lines, Parquet; both ARC layouts;
letter and digit labels), malformed files must raise MultipleChoiceFileError naming the file, the
line and the field, and COPA is read from the shared CL_Benchmark copy (skipped where it is absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migu.data.cl_benchmark import CL_BENCHMARK_ENV_VAR, default_cl_benchmark_dir
from migu.data.multiple_choice import (
    MCItem,
    MultipleChoiceFileError,
    detect_format,
    hellaswag_preprocess,
    load_copa,
    load_multiple_choice,
)

HELLASWAG = {
    "ind": 24,
    "activity_label": "Roof shingle removal",
    "ctx_a": "A man is sitting on a roof.",
    "ctx_b": "he",
    "ctx": "A man is sitting on a roof. he",
    "endings": [
        "is using wrap to wrap a pair of skis.",
        "is ripping level tiles off.",
        "is holding a rubik's cube.",
        "starts pulling up roofing on a roof.",
    ],
    "source_id": "activitynet~v_-JhWjGDPHMY",
    "split": "val",
    "split_type": "indomain",
    "label": 3,
}
WIKIHOW = {
    "ind": 7,
    "activity_label": "Home and Garden",
    "ctx_a": "[header] How to clean a grill [title] Heat the grill.",
    "ctx_b": "[step] Scrub  the GRATES.",
    "endings": ["[substeps] Use a brush.", "Eat  the grill.", "Sing.", "Sleep [title] now."],
    "label": "0",
}
ARC_ALLENAI = {
    "id": "Mercury_7175875",
    "question": {
        "stem": "An astronomer observes that a planet rotates faster after a meteorite impact. Which is the most likely effect?",
        "choices": [
            {"text": "Planetary density will decrease.", "label": "A"},
            {"text": "Planetary years will become longer.", "label": "B"},
            {"text": "Planetary days will become shorter.", "label": "C"},
            {"text": "Planetary gravity will become stronger.", "label": "D"},
        ],
    },
    "answerKey": "C",
}
ARC_HF_DIGITS = {
    "id": "NYSEDREGENTS_2015_4_8",
    "question": "What is a property of a mineral?",
    "choices": {"text": ["color", "size", "hardness", "weight"], "label": ["1", "2", "3", "4"]},
    "answerKey": "3",
}
WINOGRANDE = {
    "qID": "3QHITW7OYO7Q6B6ISU2UMJB84ZLAQE-2",
    "sentence": "Ian volunteered to eat Dennis's menudo after already having a bowl because _ despised eating intestine.",
    "option1": "Ian",
    "option2": "Dennis",
    "answer": "2",
}
COPA_SUPERGLUE = {
    "premise": "My body cast a shadow over the grass.",
    "choice1": "The sun was rising.",
    "choice2": "The grass was cut.",
    "question": "cause",
    "label": 0,
    "idx": 0,
}
COPA_CL = {
    "label": "B",
    "sentence": 'Which sentence is the effect of "The man turned on the faucet."? Choose one between A and B.\n'
    "A: The toilet filled with water.\nB: Water flowed from the spout.",
}


def _jsonl(path: Path, records: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _json(path: Path, records: list) -> Path:
    path.write_text(json.dumps(records, indent=1), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------------------------------


def test_hellaswag_official_jsonl(tmp_path: Path) -> None:
    (item,) = load_multiple_choice(_jsonl(tmp_path / "hellaswag_val.jsonl", [HELLASWAG]))
    # lm-eval: activity_label + ": " + ctx_a + " " + ctx_b.capitalize(), endings after a space.
    assert item.context == "Roof shingle removal: A man is sitting on a roof. He"
    assert item.choices[3] == " starts pulling up roofing on a roof."
    assert len(item.choices) == 4 and item.answer == 3 and item.id == "24" and not item.partial


def test_hellaswag_preprocessing_and_string_label(tmp_path: Path) -> None:
    (item,) = load_multiple_choice(_jsonl(tmp_path / "h.jsonl", [WIKIHOW]), format="hellaswag")
    # " [title]" -> ". ", other [..] markup dropped, double spaces collapsed; ctx_b.capitalize() leaves
    # "[step] ..." alone but lower-cases the rest, as in lm-eval.
    assert item.context == "Home and Garden: How to clean a grill. Heat the grill. scrub the grates."
    # lm-eval strips before dropping "[substeps]", so that ending keeps a space of its own.
    assert item.choices == ("  Use a brush.", " Eat the grill.", " Sing.", " Sleep. now.")
    assert item.answer == 0  # Rowan/hellaswag stores the label as a string
    assert hellaswag_preprocess("  Wash it [title] Rinse  it.  ") == "Wash it. Rinse it."


def test_hellaswag_ctx_only(tmp_path: Path) -> None:
    record = {"ctx": "A cat sits.", "endings": ["It naps.", "It flies."], "label": 1}
    (item,) = load_multiple_choice(_jsonl(tmp_path / "h.jsonl", [record]))
    assert item.context == "A cat sits." and item.answer == 1 and item.id == "h-0"


def test_hellaswag_parquet(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    rows = [WIKIHOW | {"ctx": "x"}, HELLASWAG | {"label": "3", "ind": 25}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "validation-00000.parquet")
    items = load_multiple_choice(tmp_path / "validation-00000.parquet")
    assert [i.answer for i in items] == [0, 3] and items[1].id == "25"


def test_arc_allenai_jsonl(tmp_path: Path) -> None:
    (item,) = load_multiple_choice(_jsonl(tmp_path / "ARC-Challenge-Dev.jsonl", [ARC_ALLENAI]))
    assert item.context == f"Question: {ARC_ALLENAI['question']['stem']}\nAnswer:"
    assert item.choices[2] == " Planetary days will become shorter."
    assert item.answer == 2 and item.id == "Mercury_7175875"


def test_arc_hf_columns_with_digit_labels(tmp_path: Path) -> None:
    (item,) = load_multiple_choice(_json(tmp_path / "arc.json", [ARC_HF_DIGITS]))
    assert item.context == "Question: What is a property of a mineral?\nAnswer:"
    assert item.choices == (" color", " size", " hardness", " weight") and item.answer == 2


@pytest.mark.parametrize(("labels", "key", "answer"), [("ABCDE", "E", 4), ("ABCD", "2", 1), ("1234", "D", 3)])
def test_arc_label_schemes(tmp_path: Path, labels: str, key: str, answer: int) -> None:
    record = {
        "question": "Q?",
        "choices": {"text": [f"t{i}" for i in range(len(labels))], "label": list(labels)},
        "answerKey": key,
    }
    (item,) = load_multiple_choice(_jsonl(tmp_path / "arc.jsonl", [record]), format="arc")
    assert item.answer == answer and len(item.choices) == len(labels)


def test_arc_parquet_struct_columns(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    pq.write_table(pa.Table.from_pylist([ARC_HF_DIGITS]), tmp_path / "test-00000.parquet")
    (item,) = load_multiple_choice(tmp_path / "test-00000.parquet")
    assert item.answer == 2 and item.choices[0] == " color"


def test_winogrande_partial_scoring(tmp_path: Path) -> None:
    (item,) = load_multiple_choice(_jsonl(tmp_path / "dev.jsonl", [WINOGRANDE]))
    prefix = "Ian volunteered to eat Dennis's menudo after already having a bowl because "
    assert item.partial and item.answer == 1 and item.id == WINOGRANDE["qID"]
    assert item.contexts == (prefix + "Ian", prefix + "Dennis")
    assert item.choices == (" despised eating intestine.",) * 2  # one continuation, scored after each
    assert item.requests() == [
        (prefix + "Ian", " despised eating intestine."),
        (prefix + "Dennis", item.choices[1]),
    ]


def test_copa_superglue_and_cl_benchmark_records(tmp_path: Path) -> None:
    (sg,) = load_multiple_choice(_jsonl(tmp_path / "copa.jsonl", [COPA_SUPERGLUE]))
    assert sg.context == "My body cast a shadow over the grass because"
    assert sg.choices == (" the sun was rising.", " the grass was cut.") and sg.answer == 0 and sg.id == "0"
    (cl,) = load_multiple_choice(_json(tmp_path / "test.json", [COPA_CL]))
    assert cl.context == "The man turned on the faucet therefore"
    assert (
        cl.choices == (" the toilet filled with water.", " water flowed from the spout.") and cl.answer == 1
    )


def test_detect_format() -> None:
    assert detect_format(HELLASWAG) == "hellaswag"
    assert detect_format(ARC_ALLENAI) == detect_format(ARC_HF_DIGITS) == "arc"
    assert detect_format(WINOGRANDE) == "winogrande"
    assert detect_format(COPA_SUPERGLUE) == detect_format(COPA_CL) == "copa"
    assert detect_format({"sentence": "hello", "label": "x"}) is None


def test_limit_and_json_lines_in_a_json_file(tmp_path: Path) -> None:
    # datasets' to_json writes JSON Lines into a ".json" file.
    path = _jsonl(tmp_path / "rows.json", [WINOGRANDE | {"qID": str(i)} for i in range(5)])
    assert [i.id for i in load_multiple_choice(path, limit=3)] == ["0", "1", "2"]
    assert len(load_multiple_choice(path)) == 5
    assert load_multiple_choice(path, limit=0) == []


def test_mcitem_checks() -> None:
    with pytest.raises(ValueError, match="answer 2"):
        MCItem("c", (" a", " b"), 2, "x")
    with pytest.raises(ValueError, match="one context per choice"):
        MCItem("c", (" a", " b"), 0, "x", contexts=("c",))


# --------------------------------------------------------------------------------------------------
# Malformed files
# --------------------------------------------------------------------------------------------------


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(WINOGRANDE) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(MultipleChoiceFileError, match=r"bad\.jsonl, line 2: not valid JSON"):
        load_multiple_choice(path)


def test_missing_field_names_line_field_and_expectation(tmp_path: Path) -> None:
    broken = {k: v for k, v in HELLASWAG.items() if k != "label"}
    path = _jsonl(tmp_path / "h.jsonl", [HELLASWAG, broken])
    with pytest.raises(MultipleChoiceFileError) as err:
        load_multiple_choice(path)
    message = str(err.value)
    assert "h.jsonl, line 2" in message and "'label'" in message and "HellaSwag records need" in message


@pytest.mark.parametrize(
    ("record", "fmt", "field"),
    [
        (HELLASWAG | {"endings": "one string"}, "hellaswag", "'endings' must be a list of strings"),
        (HELLASWAG | {"label": 7}, "hellaswag", "'label' is 7, expected 0..3"),
        (ARC_ALLENAI | {"answerKey": "Z"}, "arc", "'answerKey' is 'Z'"),
        ({"question": "Q?", "answerKey": "A"}, "arc", "field 'choices' missing"),
        (WINOGRANDE | {"sentence": "no blank here"}, "winogrande", "no '_' blank"),
        (WINOGRANDE | {"answer": ""}, "winogrande", "'answer' missing or empty"),
        (COPA_SUPERGLUE | {"question": "why"}, "copa", "'question' is 'why'"),
        (COPA_CL | {"label": "C"}, "copa", "'label' is 'C'"),
    ],
)
def test_bad_fields(tmp_path: Path, record: dict, fmt: str, field: str) -> None:
    path = _json(tmp_path / "f.json", [record])
    with pytest.raises(MultipleChoiceFileError, match="record 1") as err:
        load_multiple_choice(path, format=fmt)
    assert field in str(err.value)


def test_unknown_fields_non_objects_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(MultipleChoiceFileError, match="cannot tell the benchmark format"):
        load_multiple_choice(_jsonl(tmp_path / "a.jsonl", [{"text": "x", "label": 1}]))
    with pytest.raises(MultipleChoiceFileError, match="record 2: expected a JSON object"):
        load_multiple_choice(_json(tmp_path / "b.json", [WINOGRANDE, [1, 2]]))
    (tmp_path / "c.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(MultipleChoiceFileError, match="holds no records"):
        load_multiple_choice(tmp_path / "c.jsonl")
    (tmp_path / "d.json").write_text('[{"a": 1},', encoding="utf-8")
    with pytest.raises(MultipleChoiceFileError, match="not valid JSON"):
        load_multiple_choice(tmp_path / "d.json")


def test_missing_file_folder_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(MultipleChoiceFileError, match="not found"):
        load_multiple_choice(tmp_path / "nope.jsonl")
    with pytest.raises(MultipleChoiceFileError, match="is a folder"):
        load_multiple_choice(tmp_path)
    path = _jsonl(tmp_path / "w.jsonl", [WINOGRANDE])
    with pytest.raises(ValueError, match="format='piqa'"):
        load_multiple_choice(path, format="piqa")
    with pytest.raises(ValueError, match="limit=-1"):
        load_multiple_choice(path, limit=-1)
    with pytest.raises(MultipleChoiceFileError, match="COPA test split not found"):
        load_copa(tmp_path)


# --------------------------------------------------------------------------------------------------
# COPA from the shared CL_Benchmark folder
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_root() -> Path:
    root = default_cl_benchmark_dir()
    if not (root / "copa").is_dir():
        pytest.skip(
            f"the paper's CL_Benchmark data is not at {root} (it lives in ../shared/data/cl_benchmark "
            f"next to the repository, or where ${CL_BENCHMARK_ENV_VAR} points)"
        )
    return root


def test_copa_from_the_shared_folder(real_root: Path) -> None:
    test = load_copa(real_root)
    assert len(test) == 100 and len(load_copa(real_root, split="train")) == 400
    assert test[0] == MCItem(
        "The man turned on the faucet therefore",
        (" the toilet filled with water.", " water flowed from the spout."),
        1,
        "copa-test-0",
    )
    assert {item.context.rsplit(" ", 1)[1] for item in test} == {"because", "therefore"}
    assert sum(item.answer for item in test) == 45  # 55 "A", 45 "B" in the shared copy
    assert [i.id for i in load_copa(limit=3)] == ["copa-test-0", "copa-test-1", "copa-test-2"]
    # "all": the 100 test questions, then the 400 train ones, each once.
    both = load_copa(real_root, split="all")
    train = load_copa(real_root, split="train")
    assert both == test + train and len({i.id for i in both}) == 500
    assert [i.id for i in load_copa(real_root, split="all", limit=102)][-3:] == [
        "copa-test-99",
        "copa-train-0",
        "copa-train-1",
    ]
