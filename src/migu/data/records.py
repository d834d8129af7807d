"""One reader for the record files users give: JSON, JSON Lines and CSV.

Task files (:mod:`migu.data.files`), multiple-choice benchmark files
(:mod:`migu.data.multiple_choice`) and pre-training corpora (:mod:`migu.pretrain.corpora`) all read
records through :func:`read_records`, so a file that loads in one place loads in the others and a
broken one gets the same message everywhere: the file, the line, what is wrong and the fix.

``datasets`` reads these formats too, but its errors name neither the line nor the fix (a CSV row
with one field too many is an Arrow cast error); a user's file is small, so reading it here costs
nothing.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

__all__ = ["RECORD_SUFFIXES", "read_records", "read_text"]

#: The file types :func:`read_records` reads.
RECORD_SUFFIXES = (".json", ".jsonl", ".csv")


def read_text(path: Path, error: type[Exception] = ValueError) -> str:
    """The file's text as UTF-8 (a leading byte-order mark dropped), or ``error`` naming the file,
    the line, the byte and the fix."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")  # -sig: a byte-order mark some editors write is not text
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise error(
            f"{path}, line {line}: byte 0x{data[err.start]:02x} at offset {err.start} is not UTF-8. The "
            f"file must be UTF-8; convert it, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed{path.suffix}`."
        ) from None


def read_records(path: str | Path, error: type[Exception] = ValueError) -> list[tuple[str, Any]]:
    """``(where, record)`` pairs of a record file; ``where`` names the record for messages.

    - ``.json``: a list of records (``"record 3"``); a ``.json`` file in JSON Lines, as
      ``datasets``' ``to_json`` writes, is read as JSON Lines.
    - ``.jsonl``: one JSON value per non-blank line (``"line 17"``).
    - ``.csv``: a header row, then one dict per row (``"line 4"``, or ``"lines 4-6"`` for a quoted
      field over several lines); every row must have the header's number of fields.

    Args:
        path: The file.
        error: The exception type raised (each caller has its own, e.g. ``TaskFileError``).

    Raises:
        error: a missing file, an unknown suffix, text that is not UTF-8, malformed JSON (with its
            line), a JSON file that holds something else than a list, a CSV row of the wrong width or
            an unclosed quote.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"file not found: {path.resolve()}")
    suffix = path.suffix.lower()
    if suffix not in RECORD_SUFFIXES:
        raise error(f"{path}: unknown file type {suffix!r}; use {', '.join(RECORD_SUFFIXES)}.")
    text = read_text(path, error)
    if suffix == ".csv":
        return _csv_records(path, text, error)
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            if text.lstrip().startswith("["):
                raise error(
                    f"{path}, line {err.lineno}: not valid JSON: {err.msg} (column {err.colno}). Expected a "
                    "JSON list of records or JSON Lines (one object per line)."
                ) from None
            return _json_lines(path, text, error)  # JSON Lines in a .json file
        if not isinstance(data, list):
            raise error(f"{path}: a JSON file must hold a list of records, got {type(data).__name__}.")
        return [(f"record {i + 1}", r) for i, r in enumerate(data)]
    return _json_lines(path, text, error)


def _json_lines(path: Path, text: str, error: type[Exception]) -> list[tuple[str, Any]]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"line {n}", json.loads(line)))
        except json.JSONDecodeError as err:
            raise error(
                f"{path}, line {n}: not valid JSON: {err.msg} (column {err.colno}). Expected JSON Lines "
                "(one object per line) or a JSON list of records."
            ) from None
    return out


def _csv_records(path: Path, text: str, error: type[Exception]) -> list[tuple[str, Any]]:
    """CSV rows as dicts; a row with too few or too many fields, or an unclosed quote, is an error."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    start = 1
    try:
        header = next(reader, None)
        if header is None:
            return []
        out = []
        start = reader.line_num + 1
        for row in reader:
            if not row:  # a blank line
                start = reader.line_num + 1
                continue
            where = f"line {start}" if start == reader.line_num else f"lines {start}-{reader.line_num}"
            if len(row) != len(header):
                raise error(
                    f"{path}, {where}: {len(row)} fields where the header has {len(header)} "
                    f"({', '.join(header)}). Quote fields that contain commas, or fix the row."
                )
            out.append((where, dict(zip(header, row, strict=True))))
            start = reader.line_num + 1
    except csv.Error as err:
        raise error(
            f"{path}, line {start}: {err} (a quote opened there is never closed?). Close the quote or "
            'double a quote inside a quoted field ("").'
        ) from None
    return out
