import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from tessy_dagster import schemas
from tessy_dagster.corpus.filters import build_sft_corpus, load_chat_records
from tessy_dagster.storage import write_table

BASE = {
    "arm": "tessy", "prompt": "Write f(x) that adds 1.", "spans": [], "n_tokens_student": 10,
    "n_tokens_teacher": 30, "n_tokens_total": 40, "n_own_tokens_student": 10, "n_own_tokens_teacher": 30,
    "n_switches": 2, "rollback_tokens": 3, "rounds": 4, "answer_author": "student", "attempts": 1, "seed": 0,
    "sampling": "{}", "teacher_digest": "t", "student_digest": "s", "boundary_digest": "b",
}


def _trace(pid, **changes):
    row = {**BASE, "prompt_id": pid, "thinking": "Now then, Step 1 adds 1: (x + 1).", "answer": "def f(x): return x+1",
           "ended": "end_of_thinking", "answer_finish_reason": "stop"}
    row.update(changes)
    return row


@pytest.fixture
def traces_path(tmp_path):
    rows = [
        _trace("a"),
        _trace("b", thinking="Hmm, wait. Let me think. Step 1 adds 1: (x + 1).", n_tokens_teacher=40, n_tokens_student=0),
        _trace("c", ended="length_budget"),
        _trace("d", n_tokens_total=999),
        _trace("e", answer_finish_reason="length"),
        _trace("f", answer="  "),
    ]
    path = tmp_path / "traces.parquet"
    write_table(pa.Table.from_pylist(rows, schema=schemas.TRACES), path, schemas.TRACES)
    return path


def test_filters_keep_normal_answered_traces_and_count_every_drop(traces_path, tmp_path):
    stats = build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100)
    assert stats["traces"] == 6 and stats["records"] == 2
    assert stats["dropped_ended_length_budget"] == 1 and stats["dropped_over_budget"] == 1
    assert stats["dropped_answer_length"] == 1 and stats["dropped_empty_answer"] == 1
    assert stats["mean_teacher_token_share"] == pytest.approx((30 / 40 + 40 / 40) / 2)


def test_records_load_through_datasets_as_two_turn_chats(traces_path, tmp_path):
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100)
    records = load_chat_records(tmp_path / "corpus.parquet")
    prompt, assistant = records[0]
    assert prompt == "Write f(x) that adds 1."
    assert assistant.startswith("<think>\nNow then,") and "\n</think>\n\ndef f(x)" in assistant


def test_drift_metrics_per_trace(traces_path, tmp_path):
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100)
    table = pa.parquet.read_table(tmp_path / "corpus.parquet").to_pylist()
    by_id = {r["prompt_id"]: r for r in table}
    assert by_id["a"]["teacher_marker_rate"] == 0 and by_id["a"]["student_marker_rate"] > 0
    assert by_id["b"]["teacher_marker_rate"] == pytest.approx(100 * 2 / 12)  # 2 markers in 12 words


def test_missing_traces_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="cooperative_traces"):
        build_sft_corpus(tmp_path / "nope.parquet", tmp_path / "c.parquet", 10)
