"""Tests for the prompts input engine: real files in tmp_path, a real datasets folder, the real GX suite."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tessy_dagster.inputs.prompt_checks import (
    CHECKS, PROMPT_CHECKS, PromptsInvalid, assert_prompts_valid, validate_prompts,
)
from tessy_dagster.inputs.prompts import (
    PROMPTS, TABLE_FILE, build_prompts, read_prompts_source, source_digest, write_prompts_table,
)
from tessy_dagster.settings import PromptColumns, PromptsFile
from tessy_dagster.storage import read_table


def words(texts: list[str]) -> list[int]:
    """A stand-in tokenizer: one token per whitespace-separated word."""
    return [len(t.split()) for t in texts]


LIMITS = {"student": (8, words), "teacher": (16, words)}


def write_jsonl(path: Path, records: list, *, raw_lines: dict[int, bytes] | None = None) -> Path:
    """One JSON value per line; `raw_lines` puts bytes as they are at a 0-based line index."""
    lines = [json.dumps(r).encode() for r in records]
    for index, raw in (raw_lines or {}).items():
        lines.insert(index, raw)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def good_records(n: int = 4) -> list[dict]:
    return [{"id": i, "prompt": f"write a function number {i}", "tests": [{"input": i, "output": i + 1}],
             "level": i % 2 + 1, "origin": "team-a" if i % 2 else "team-b"} for i in range(n)]


MAPPED = PromptColumns(tests="tests", difficulty="level", source="origin")


def error_of(spec: PromptsFile) -> str:
    with pytest.raises((ValueError, FileNotFoundError)) as info:
        read_prompts_source(spec)
    return str(info.value)


def failure_of(rows: list[dict], spec: PromptsFile, **kwargs) -> tuple[dict, str]:
    verdict = validate_prompts(rows, context_limits=kwargs.pop("limits", LIMITS), **kwargs)
    assert not verdict["success"]
    with pytest.raises(PromptsInvalid) as info:
        assert_prompts_valid(verdict, rows, spec)
    assert info.value.verdict is verdict  # the asset reports the checks from it
    return verdict, str(info.value)


# --- reading ----------------------------------------------------------------------------------------------

def test_jsonl_rows_are_normalized_and_located(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", good_records(3), raw_lines={1: b"   "})  # a blank line 2
    rows = read_prompts_source(PromptsFile(path=str(path), columns=MAPPED))
    assert [r["problem_id"] for r in rows] == ["0", "1", "2"]  # int ids become text
    assert [r["source_row"] for r in rows] == [0, 2, 3]  # line index: the blank line counts, is skipped
    assert rows[1] == {"problem_id": "1", "prompt": "write a function number 1",
                       "tests": json.dumps([{"input": 1, "output": 2}]), "difficulty": "2", "source": "team-a",
                       "source_file": str(path), "source_row": 2}


def test_unmapped_optional_fields_are_empty(tmp_path):
    path = write_jsonl(tmp_path / "p.json", [{"id": "a", "prompt": "x", "tests": [1]}])  # .json reads as JSONL
    (row,) = read_prompts_source(PromptsFile(path=str(path)))
    assert (row["tests"], row["difficulty"], row["source"]) == ("", "", "")


def test_parquet_with_remapped_columns(tmp_path):
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.table({"uid": [10, 11], "question": ["q one", "q two"], "tests": ['[1]', None]}), path)
    spec = PromptsFile(path=str(path), columns=PromptColumns(id="uid", prompt="question", tests="tests"))
    rows = read_prompts_source(spec)
    assert [(r["problem_id"], r["prompt"], r["tests"], r["source_row"]) for r in rows] == [
        ("10", "q one", "[1]", 0), ("11", "q two", "", 1)]  # JSON text is kept as it is; null -> ""


def test_saved_dataset_rows_point_at_their_arrow_shard(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_list(good_records(6)).save_to_disk(str(folder), num_shards=2)
    rows = read_prompts_source(PromptsFile(path=str(folder), columns=MAPPED))  # auto: a folder is a dataset
    assert [r["problem_id"] for r in rows] == [str(i) for i in range(6)]
    assert [(Path(r["source_file"]).name, r["source_row"]) for r in rows] == [
        ("data-00000-of-00002.arrow", i) for i in range(3)] + [("data-00001-of-00002.arrow", i) for i in range(3)]
    assert all(Path(r["source_file"]).parent == folder for r in rows)
    assert json.loads(rows[4]["tests"]) == [{"input": 4, "output": 5}]


def test_dataset_dict_split_is_chosen_or_listed(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(good_records(2)),
                          "test": datasets.Dataset.from_list(good_records(3))}).save_to_disk(str(folder))
    assert len(read_prompts_source(PromptsFile(path=str(folder), split="test"))) == 3
    message = error_of(PromptsFile(path=str(folder)))
    assert "'train', 'test'" in message and "inputs.prompts.split" in message
    message = error_of(PromptsFile(path=str(folder), split="validation"))
    assert "no split 'validation'" in message and "'train', 'test'" in message

    single = tmp_path / "single"
    datasets.Dataset.from_list(good_records(2)).save_to_disk(str(single))
    assert "remove it" in error_of(PromptsFile(path=str(single), split="train"))


def test_a_folder_that_is_no_saved_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    message = error_of(PromptsFile(path=str(tmp_path)))
    assert str(tmp_path) in message and "save_to_disk" in message


# --- errors of the reader, one kind each ---------------------------------------------------------------

def test_missing_file_and_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"prompts file .*nope\.jsonl does not exist.*inputs\.prompts\.path"):
        read_prompts_source(PromptsFile(path=str(tmp_path / "nope.jsonl")))
    with pytest.raises(FileNotFoundError, match=r"prompts folder .*gone does not exist"):
        read_prompts_source(PromptsFile(path=str(tmp_path / "gone"), format="dataset"))


def test_unknown_suffix_and_format_kind_mismatch(tmp_path):
    csv = tmp_path / "prompts.csv"
    csv.write_text("id,prompt\n1,x\n")
    assert "inputs.prompts.format" in error_of(PromptsFile(path=str(csv)))
    txt = write_jsonl(tmp_path / "p.txt", [{"id": 1, "prompt": "x"}])
    assert len(read_prompts_source(PromptsFile(path=str(txt), format="jsonl"))) == 1  # an explicit format wins
    assert "is a file, but format 'dataset'" in error_of(PromptsFile(path=str(csv), format="dataset"))
    assert "is a folder, but format 'parquet'" in error_of(PromptsFile(path=str(tmp_path), format="parquet"))


def test_malformed_jsonl_line(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", good_records(2), raw_lines={2: b'{"id": 7, "prompt": "x"'})
    message = error_of(PromptsFile(path=str(path)))
    assert message.startswith(f"{path} line 3: not valid JSON (")
    assert "one JSON object" in message


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [good_records(1)[0], ["an", "array"]])
    message = error_of(PromptsFile(path=str(path)))
    assert message.startswith(f"{path} line 2: expected a JSON object") and "got list" in message


def test_missing_column_in_jsonl_names_it_and_the_setting(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"id": 1, "question": "x"}])
    message = error_of(PromptsFile(path=str(path)))
    assert message.startswith(f"{path} line 1: no column 'prompt' for field prompt")
    assert "'id', 'question'" in message and "inputs.prompts.columns.prompt" in message


def test_misnamed_column_in_parquet_suggests_the_close_one(tmp_path):
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.table({"id": ["a"], "prompt": ["x"], "Difficulty": ["hard"]}), path)
    message = error_of(PromptsFile(path=str(path), columns=PromptColumns(difficulty="difficulty")))
    assert message.startswith(f"{path}: no column 'difficulty' for field difficulty (did you mean 'Difficulty'?)")
    assert "inputs.prompts.columns.difficulty" in message


def test_bytes_that_are_not_utf8_report_line_and_offset(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", good_records(1),
                       raw_lines={1: b'{"id": "b", "prompt": "caf\xe9"}'})
    first_line = len(json.dumps(good_records(1)[0]).encode()) + 1
    message = error_of(PromptsFile(path=str(path)))
    offset = len(b'{"id": "b", "prompt": "caf')
    assert message.startswith(f"{path} line 2: not valid UTF-8 at byte {offset} of the line "
                              f"(byte {first_line + offset} of the file, b'\\xe9')")


def test_binary_parquet_prompt_that_is_not_utf8(tmp_path):
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.table({"id": ["a", "b"], "prompt": pa.array([b"ok", b"ab\xffc"], pa.binary())}), path)
    message = error_of(PromptsFile(path=str(path)))
    assert message.startswith(f"{path} row 1, field prompt (column 'prompt'): not valid UTF-8 at byte 2")


def test_wrong_value_types(tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"id": 1, "prompt": ["not", "text"]}])
    assert "line 1, field prompt (column 'prompt'): expected text, got list" in error_of(PromptsFile(path=str(path)))
    path = write_jsonl(tmp_path / "ids.jsonl", [{"id": 1.5, "prompt": "x"}])
    assert "line 1, field id (column 'id'): expected text, got float" in error_of(PromptsFile(path=str(path)))


def test_empty_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n  \n")
    assert "holds no prompts" in error_of(PromptsFile(path=str(path)))


# --- the GX suite and its messages -----------------------------------------------------------------------

def test_good_prompts_pass_every_check(tmp_path):
    rows = read_prompts_source(PromptsFile(path=str(write_jsonl(tmp_path / "p.jsonl", good_records(4)))))
    verdict = validate_prompts(rows, context_limits=LIMITS, reserve_tokens={"student": 2})
    assert verdict["success"] and list(verdict["checks"]) == list(CHECKS) == list(PROMPT_CHECKS)
    assert all(c["passed"] for c in verdict["checks"].values())
    fit = {e["name"]: e for e in verdict["checks"]["prompts_fit_context"]["expectations"]}
    assert fit["max_prompt_tokens_student"]["observed"] == 5.0  # "write a function number 3"
    assert fit["max_prompt_tokens_student"]["threshold"] == 6.0  # 8 minus 2 reserved
    assert fit["max_prompt_tokens_teacher"]["threshold"] == 16.0
    assert fit["prompt_tokens_student"]["observed"] == 0.0  # per-row: no offending rows
    json.dumps(verdict)  # plain data: the asset puts it in check metadata
    assert_prompts_valid(verdict, rows, PromptsFile(path=str(tmp_path / "p.jsonl")))


def test_duplicate_ids_name_both_rows(tmp_path):
    records = good_records(4) + [{"id": 1, "prompt": "again"}, {"id": "3", "prompt": "and again"}]
    spec = PromptsFile(path=str(write_jsonl(tmp_path / "prompts.jsonl", records)))
    verdict, message = failure_of(read_prompts_source(spec), spec)
    assert not verdict["checks"]["ids_unique"]["passed"] and verdict["checks"]["prompts_non_empty"]["passed"]
    assert message.startswith(f"{spec.path} line 2, field id (column 'id'): duplicate id '1', also at line 5; "
                              f"ids must be unique")
    assert "'3' at line 4, line 6" in message  # the int 3 and the text "3" are the same id


def test_empty_prompts_are_listed(tmp_path):
    records = good_records(2) + [{"id": "n", "prompt": None}, {"id": "e", "prompt": ""}, {"id": "w", "prompt": " \t"}]
    spec = PromptsFile(path=str(write_jsonl(tmp_path / "prompts.jsonl", records)))
    verdict, message = failure_of(read_prompts_source(spec), spec)
    present = {e["name"]: e for e in verdict["checks"]["prompts_non_empty"]["expectations"]}["prompts_present"]
    assert present["observed"] == 3.0 and not present["success"]
    assert message == (f"{spec.path} line 3, field prompt (column 'prompt'): the prompt is empty (null or only "
                       f"whitespace); write the prompt or drop the row (3 rows empty: line 3, line 4, line 5)")


def test_null_or_empty_ids(tmp_path):
    records = good_records(2) + [{"id": None, "prompt": "x"}, {"id": "  ", "prompt": "y"}]
    spec = PromptsFile(path=str(write_jsonl(tmp_path / "prompts.jsonl", records)))
    verdict, message = failure_of(read_prompts_source(spec), spec)
    assert not verdict["checks"]["ids_unique"]["passed"]
    assert message.startswith(f"{spec.path} line 3, field id (column 'id'): the id is null or empty")
    assert "(2 rows without an id: line 3, line 4)" in message


def test_prompt_over_a_models_context(tmp_path):
    path = tmp_path / "prompts.parquet"
    prompts = ["short one", "w " * 7, "w " * 12, "fine"]  # 2, 7, 12, 1 words
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "prompt": prompts}), path)
    spec = PromptsFile(path=str(path))
    verdict, message = failure_of(read_prompts_source(spec), spec, reserve_tokens={"student": 2, "teacher": 4})
    fit = {e["name"]: e for e in verdict["checks"]["prompts_fit_context"]["expectations"]}
    assert fit["prompt_tokens_student"]["observed"] == 2.0  # rows b and c are over 8 - 2
    assert fit["max_prompt_tokens_student"]["observed"] == 12.0
    assert fit["prompt_tokens_teacher"]["success"]  # 12 is within 16 - 4
    assert message == (f"{path} row 1, field prompt (column 'prompt'): 7 tokens in the student's tokenizer, over "
                       f"its context of 8 minus 2 reserved for the trace; shorten it or drop the row "
                       f"(2 rows over 6 tokens: row 1 (7), row 2 (12))")


def test_a_reserve_that_leaves_no_room_is_a_settings_error():
    with pytest.raises(ValueError, match="leaves no room"):
        validate_prompts([], context_limits={"student": (8, words)}, reserve_tokens=8)


# --- writing, digest, the whole build --------------------------------------------------------------------

def test_write_prompts_table_schema_and_metrics(tmp_path):
    spec = PromptsFile(path=str(write_jsonl(tmp_path / "p.jsonl", good_records(4) + [
        {"id": "x", "prompt": "no tests here", "tests": None, "level": None, "origin": None}])), columns=MAPPED)
    rows = read_prompts_source(spec)
    metrics = write_prompts_table(rows, tmp_path / "out")
    table = read_table(tmp_path / "out" / TABLE_FILE)
    assert table.schema == PROMPTS
    assert table.column("problem_id").to_pylist() == ["0", "1", "2", "3", "x"]
    assert metrics == {"rows": 5, "mean_prompt_chars": sum(len(r["prompt"]) for r in rows) / 5,
                       "max_prompt_chars": 25, "distinct_sources": 2, "rows_with_tests": 4}


def test_source_digest_follows_the_bytes_and_the_mapping(tmp_path):
    path = write_jsonl(tmp_path / "p.jsonl", good_records(3))
    spec = PromptsFile(path=str(path))
    before = source_digest(spec)
    data = path.read_bytes()
    path.write_bytes(data)  # rewritten, same bytes: same version
    assert source_digest(spec) == before
    path.write_bytes(data.replace(b"number 1", b"number 9"))  # one byte edited
    assert source_digest(spec) != before
    path.write_bytes(data)
    assert source_digest(PromptsFile(path=str(path), columns=PromptColumns(source="origin"))) != before
    assert source_digest(PromptsFile(path=str(path), format="jsonl")) == before  # auto resolves to jsonl


def test_source_digest_of_a_saved_dataset(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_list(good_records(3)).save_to_disk(str(folder))
    spec = PromptsFile(path=str(folder))
    before = source_digest(spec)
    arrow = next(folder.glob("*.arrow"))
    data = arrow.read_bytes()
    arrow.write_bytes(data)
    assert source_digest(spec) == before
    edited = bytearray(data)
    at = data.index(b"number 1") + len("number ")
    edited[at] = ord("7")
    arrow.write_bytes(bytes(edited))
    assert source_digest(spec) != before


def test_build_writes_only_good_input(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier artifact")
    before = sorted(p.name for p in out.iterdir())

    bad_json = write_jsonl(tmp_path / "bad.jsonl", good_records(2), raw_lines={1: b"{oops"})
    too_long = write_jsonl(tmp_path / "long.jsonl", good_records(2) + [{"id": "z", "prompt": "w " * 40}])
    for path, error in ((bad_json, ValueError), (too_long, PromptsInvalid)):  # a reader error, a failed suite
        with pytest.raises(error):
            build_prompts(PromptsFile(path=str(path)), out, LIMITS)
        assert sorted(p.name for p in out.iterdir()) == before
        assert (out / "keep.txt").read_text() == "an earlier artifact"

    metrics, verdict = build_prompts(PromptsFile(path=str(write_jsonl(tmp_path / "ok.jsonl", good_records(3)))),
                                     tmp_path / "fresh", LIMITS, reserve_tokens=1)
    assert verdict["success"] and metrics["rows"] == 3
    assert read_table(tmp_path / "fresh" / TABLE_FILE).num_rows == 3


def test_build_from_rows_made_in_code(tmp_path):
    """The toy world hands rows already in the table's shape; they go through the same suite."""
    def rows():
        return [{"problem_id": f"toy-{i}", "prompt": "w " * (3 + 5 * i), "tests": "", "difficulty": "",
                 "source": "toyworld", "source_file": "toyworld", "source_row": i} for i in range(2)]

    metrics, _ = build_prompts(rows, tmp_path / "ok", {"student": (16, words)})
    assert metrics["rows"] == 2 and metrics["distinct_sources"] == 1
    with pytest.raises(PromptsInvalid, match=r"^toyworld row 1, field prompt \(column 'prompt'\): 8 tokens"):
        build_prompts(rows, tmp_path / "bad", {"student": (8, words)}, reserve_tokens=1)
    assert not (tmp_path / "bad").exists()
