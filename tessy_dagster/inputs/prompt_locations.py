"""Where a prompts row came from, worded for messages: the format a source is read as, a row's location
("line N" for JSONL, "row N" otherwise; see prompts.py for what `source_file` and `source_row` hold) and a
field's column. Shared by the reader (prompts.py) and the suite's messages (prompt_checks.py), which
prompts.py imports, so these cannot live in prompts.py.
"""

from __future__ import annotations

from pathlib import Path

from ..settings import PromptColumns, PromptsFile


def _format_of(spec: PromptsFile) -> str | None:
    """The format to read `spec.path` as; None where `auto` cannot tell (a pure guess: no existence check)."""
    if spec.format != "auto":
        return spec.format
    path = Path(spec.path)
    if path.is_dir():
        return "dataset"
    return {".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}.get(path.suffix.lower())


def _where(fmt: str, source_file: str, source_row: int) -> str:
    return f"{source_file} line {source_row + 1}" if fmt == "jsonl" else f"{source_file} row {source_row}"


def _field(columns: PromptColumns, field: str) -> str:
    return f"field {field} (column {getattr(columns, field)!r})"
