"""The `prompts` input asset's engine, for a team's own prompts file (`inputs.prompts`).

    read_prompts_source -> validate_prompts -> assert_prompts_valid -> write_prompts_table

This module holds the reading, the writing, the digest and :func:`build_prompts`, which runs the four in
that order, so nothing is written unless the input is good; the validating (the blocking GX suite and
:class:`PromptsInvalid`) is prompt_checks.py's, and how a row's location is worded prompt_locations.py's.
:func:`source_digest` is the asset's data version: the source's bytes plus how they are read.

Where a row came from. Each row keeps `source_file` (the JSONL or Parquet file, or the Arrow shard inside
a `save_to_disk` folder) and `source_row`, the 0-based position of its record in that file. For JSONL that
is the line index (blank lines count, so `source_row + 1` is the line number an editor shows); for Parquet
and datasets it is the row index within `source_file`. Messages say "line N" (1-based) for JSONL and
"row N" (0-based, as pyarrow and datasets index) otherwise.

Two kinds of bad input:
- What makes the file unreadable as prompts (missing, not UTF-8, malformed JSON, a line that is no object,
  a mapped column that is absent, a value of the wrong type, no rows at all) raises in the reader, at the
  first problem: nothing after it could be trusted.
- What the Great Expectations suite gates (ids present and unique, prompts not empty, prompts within each
  model's context) the reader passes through. The suite counts it (the asset's checks);
  :func:`assert_prompts_valid` then raises :class:`PromptsInvalid` (a ValueError carrying the verdict)
  naming the first offending row, and up to ``MAX_LISTED`` more of the same kind, so one run shows the
  extent of the damage (all three in prompt_checks.py).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from ..schemas import PROMPTS  # noqa: F401 - re-exported: the table this module writes
from ..settings import PromptColumns, PromptsFile
from ..storage import digest_json, digest_path, write_table
from .prompt_checks import TokenCounter, assert_prompts_valid, validate_prompts
from .prompt_locations import _field, _format_of, _where

TABLE_FILE = "prompts.parquet"

FIELDS = ("id", "prompt", "tests", "difficulty", "source")  # PromptColumns' fields


# --- reading ----------------------------------------------------------------------------------------------

def _missing_column(where: str, field: str, column: str, found: list[str]) -> ValueError:
    close = difflib.get_close_matches(column, found, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"{where}: no column {column!r} for field {field}{hint}; the columns found are: "
                      f"{', '.join(map(repr, found)) or 'none'}. Set inputs.prompts.columns.{field} to the "
                      f"column that holds the {field}")


def resolve_format(spec: PromptsFile) -> str:
    """`jsonl`, `parquet` or `dataset`, checking that the path exists and is a file or folder as needed."""
    path = Path(spec.path)
    if not path.exists():
        kind = "folder" if spec.format == "dataset" else "file"
        raise FileNotFoundError(f"prompts {kind} {path} does not exist: point inputs.prompts.path at the "
                                f"prompts (a JSONL or Parquet file, or a datasets save_to_disk folder)")
    fmt = _format_of(spec)
    if fmt is None:
        raise ValueError(f"{path}: cannot tell the format from the suffix {path.suffix!r}: name the file .jsonl, "
                         f".json or .parquet, or set inputs.prompts.format to jsonl, parquet or dataset")
    if fmt == "dataset" and not path.is_dir():
        raise ValueError(f"{path} is a file, but format 'dataset' reads a folder written by datasets' "
                         f"save_to_disk: point inputs.prompts.path at that folder, or set inputs.prompts.format")
    if fmt != "dataset" and path.is_dir():
        raise ValueError(f"{path} is a folder, but format {fmt!r} reads a file: point inputs.prompts.path at "
                         f"the file, or set inputs.prompts.format to 'dataset' for a save_to_disk folder")
    return fmt


def _text(value: Any, where: str, what: str) -> str:
    """A str as it is, bytes decoded as UTF-8 (Parquet binary columns); anything else is an error."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(f"{where}, {what}: not valid UTF-8 at byte {err.start} of the value "
                             f"({value[err.start:err.start + 1]!r}); store the text as UTF-8") from err
    if isinstance(value, str):
        return value
    raise ValueError(f"{where}, {what}: expected text, got {type(value).__name__} {value!r:.60}; "
                     f"store the text as a string")


def _problem_id(value: Any, where: str, what: str) -> str | None:
    # Ids may be numbers in the source; the table's ids are text. Null stays None for the suite to count.
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{where}, {what}: expected a text or integer id, got {value!r}")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():  # e.g. an integer column with nulls, read as floats
        return str(int(value))
    return _text(value, where, what)


def _label(value: Any, where: str, what: str) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):  # e.g. difficulty 3
        return str(value)
    return _text(value, where, what)


def _tests(value: Any, where: str, what: str) -> str:
    # Text is taken to be JSON already (LiveCodeBench stores its tests so); anything else is encoded once.
    if value is None:
        return ""
    if isinstance(value, (str, bytes)):
        return _text(value, where, what)
    return json.dumps(value, ensure_ascii=False, default=str)


def _normalize(record: dict, columns: PromptColumns, where: str) -> dict:
    """One source record as a prompts row (without its location), failing on absent columns and bad types."""
    values = {}
    for field in FIELDS:
        column = getattr(columns, field)
        if column is not None and column not in record:
            raise _missing_column(where, field, column, list(record))
        values[field] = None if column is None else record[column]
    prompt = values["prompt"]
    return {
        "problem_id": _problem_id(values["id"], where, _field(columns, "id")),
        "prompt": None if prompt is None else _text(prompt, where, _field(columns, "prompt")),
        "tests": _tests(values["tests"], where, _field(columns, "tests")) if columns.tests else "",
        "difficulty": "" if columns.difficulty is None else _label(values["difficulty"], where,
                                                                   _field(columns, "difficulty")),
        "source": "" if columns.source is None else _label(values["source"], where, _field(columns, "source")),
    }


def _read_jsonl(path: Path, columns: PromptColumns) -> list[dict]:
    # Line by line, as bytes: a bad line is reported with its number, a bad byte with its offset.
    rows, offset = [], 0
    with path.open("rb") as f:
        for index, raw in enumerate(f):
            where = _where("jsonl", str(path), index)
            start = 3 if index == 0 and raw.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 byte-order mark
            try:
                text = raw[start:].decode("utf-8")
            except UnicodeDecodeError as err:
                at = start + err.start
                raise ValueError(f"{where}: not valid UTF-8 at byte {at} of the line (byte {offset + at} of the "
                                 f"file, {raw[at:at + 1]!r}); save the file as UTF-8") from err
            offset += len(raw)
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as err:
                hint = " (a JSON array? write one object per line)" if index == 0 and text.lstrip()[:1] == "[" else ""
                raise ValueError(f"{where}: not valid JSON ({err.msg} at column {err.colno}){hint}; each line must "
                                 f"hold one JSON object") from err
            if not isinstance(record, dict):
                raise ValueError(f"{where}: expected a JSON object like {{\"{columns.id}\": ..., \"{columns.prompt}"
                                 f"\": ...}}, got {type(record).__name__} {text.strip()!r:.60}; each line must hold "
                                 f"one object")
            rows.append({**_normalize(record, columns, where), "source_file": str(path), "source_row": index})
    return rows


def _mapped_columns(columns: PromptColumns) -> dict[str, str]:
    return {field: getattr(columns, field) for field in FIELDS if getattr(columns, field) is not None}


def _read_table_rows(fmt: str, records: list[dict], locations: list[tuple[str, int]],
                     columns: PromptColumns) -> list[dict]:
    return [{**_normalize(rec, columns, _where(fmt, file, row)), "source_file": file, "source_row": row}
            for rec, (file, row) in zip(records, locations)]


def _check_columns(where: str, found: list[str], columns: PromptColumns) -> list[str]:
    """The distinct mapped columns, failing on the first absent one (a table has one schema for all rows)."""
    for field, column in _mapped_columns(columns).items():
        if column not in found:
            raise _missing_column(where, field, column, found)
    return sorted(set(_mapped_columns(columns).values()))


def _read_parquet(path: Path, columns: PromptColumns) -> list[dict]:
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path}: not a readable Parquet file ({err}); write it with pyarrow or pandas, or set "
                         f"inputs.prompts.format") from err
    needed = _check_columns(str(path), schema.names, columns)
    records = pq.read_table(path, columns=needed).to_pylist()
    return _read_table_rows("parquet", records, [(str(path), i) for i in range(len(records))], columns)


def _shard_locations(ds: Any, folder: Path) -> list[tuple[str, int]]:
    """(Arrow file, row in it) of each row: save_to_disk shards a dataset into files read in order."""
    files = [c["filename"] for c in ds.cache_files]
    counts = [sum(batch.num_rows for batch in pa.ipc.open_stream(pa.memory_map(f))) for f in files]
    if sum(counts) != len(ds):  # not backed by its files one to one: fall back to the folder's row index
        return [(str(folder), i) for i in range(len(ds))]
    return [(f, i) for f, n in zip(files, counts) for i in range(n)]


def _read_dataset(path: Path, spec: PromptsFile) -> list[dict]:
    import datasets  # lazily: importing it takes a second

    try:
        loaded = datasets.load_from_disk(str(path))
    except FileNotFoundError as err:
        raise ValueError(f"{path} is not a folder written by datasets' save_to_disk ({err}); point "
                         f"inputs.prompts.path at such a folder, or at a JSONL or Parquet file") from err
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if spec.split is None and len(splits) != 1:
            raise ValueError(f"{path} holds a DatasetDict with splits {', '.join(map(repr, splits))}: choose one "
                             f"with inputs.prompts.split")
        split = spec.split or splits[0]
        if split not in loaded:
            raise ValueError(f"{path} has no split {split!r} (inputs.prompts.split); its splits are: "
                             f"{', '.join(map(repr, splits))}")
        ds = loaded[split]
    else:
        if spec.split is not None:
            raise ValueError(f"{path} holds a single Dataset, not a DatasetDict, so inputs.prompts.split "
                             f"{spec.split!r} has nothing to choose: remove it")
        ds = loaded
    needed = _check_columns(str(path), list(ds.column_names), spec.columns)
    records = ds.select_columns(needed).to_list()
    return _read_table_rows("dataset", records, _shard_locations(ds, path), spec.columns)


def read_prompts_source(spec: PromptsFile) -> list[dict]:
    """The source's rows, in its order, normalized to :data:`PROMPTS`' columns. Reads only."""
    fmt = resolve_format(spec)
    path = Path(spec.path)
    if fmt == "jsonl":
        rows = _read_jsonl(path, spec.columns)
    elif fmt == "parquet":
        rows = _read_parquet(path, spec.columns)
    else:
        rows = _read_dataset(path, spec)
    if not rows:
        raise ValueError(f"{path} holds no prompts (no rows{', only blank lines' if fmt == 'jsonl' else ''}): "
                         f"point inputs.prompts.path at a file with at least one prompt")
    return rows


# --- writing, digest, the whole build ---------------------------------------------------------------------

def write_prompts_table(rows: list[dict], out_dir: str | Path) -> dict:
    """Write `out_dir/prompts.parquet` (:data:`PROMPTS`); return the asset's numeric metadata."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist([{name: r[name] for name in PROMPTS.names} for r in rows], schema=PROMPTS)
    write_table(table, out / TABLE_FILE, PROMPTS)
    chars = [len(r["prompt"] or "") for r in rows]
    return {
        "rows": len(rows),
        "mean_prompt_chars": sum(chars) / len(chars) if chars else 0.0,
        "max_prompt_chars": max(chars, default=0),
        "distinct_sources": len({r["source"] for r in rows if r["source"]}),
        "rows_with_tests": sum(1 for r in rows if r["tests"]),
    }


def source_digest(spec: PromptsFile) -> str:
    """The asset's data version: the source's content (a file's bytes; a folder's relative names and bytes)
    and how it is read (format, split, column mapping), so remapping a column makes downstream stale too.
    The path itself is left out: the same file moved elsewhere is the same prompts."""
    fmt = resolve_format(spec)
    return digest_json({"content": digest_path(spec.path), "format": fmt, "split": spec.split,
                        "columns": spec.columns.model_dump()})


def build_prompts(source: PromptsFile | Callable[[], list[dict]], out_dir: str | Path,
                  context_limits: dict[str, tuple[int, TokenCounter]], *,
                  reserve_tokens: dict[str, int] | int = 0) -> tuple[dict, dict]:
    """Read, validate and only then write into `out_dir`: on bad input it raises with `out_dir` untouched
    (a reader error as ValueError/FileNotFoundError, a failed suite as :class:`PromptsInvalid`).

    `source` is a team's prompts file, or a function returning rows already in the table's shape (the toy
    world's), which go through the same suite. Returns (write_prompts_table's metrics, the suite's verdict).
    """
    spec = source if isinstance(source, PromptsFile) else None
    rows = read_prompts_source(spec) if spec else list(source())
    verdict = validate_prompts(rows, context_limits=context_limits, reserve_tokens=reserve_tokens)
    assert_prompts_valid(verdict, rows, spec)
    return write_prompts_table(rows, out_dir), verdict
