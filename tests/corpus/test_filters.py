import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from chat_templates import save_tokenizer_folder
from tessy_dagster import schemas
from tessy_dagster.chat_format import THINK
from tessy_dagster.corpus.filters import build_sft_corpus, load_chat_records
from tessy_dagster.settings import StyleLexicons
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
    stats = build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK)
    assert stats["traces"] == 6 and stats["records"] == 2
    assert stats["dropped_ended_length_budget"] == 1 and stats["dropped_over_budget"] == 1
    assert stats["dropped_answer_length"] == 1 and stats["dropped_empty_answer"] == 1
    assert stats["mean_teacher_token_share"] == pytest.approx((30 / 40 + 40 / 40) / 2)


def test_records_load_through_datasets_as_two_turn_chats(traces_path, tmp_path):
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK)
    records = load_chat_records(tmp_path / "corpus.parquet")
    prompt, assistant = records[0]
    assert prompt == "Write f(x) that adds 1."
    assert assistant.startswith("<think>\nNow then,") and "\n</think>\n\ndef f(x)" in assistant


def test_drift_metrics_per_trace(traces_path, tmp_path):
    lexicons = StyleLexicons(teacher=("Hmm, wait.", "Let me think."), student=("Now then,",))
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK,
                     lexicons=lexicons)
    table = pa.parquet.read_table(tmp_path / "corpus.parquet").to_pylist()
    by_id = {r["prompt_id"]: r for r in table}
    assert by_id["a"]["teacher_marker_rate"] == 0 and by_id["a"]["student_marker_rate"] > 0
    assert by_id["b"]["teacher_marker_rate"] == pytest.approx(100 * 2 / 12)  # 2 markers in 12 words


def test_without_a_lexicon_the_marker_rates_are_null(traces_path, tmp_path):
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK)
    rows = pa.parquet.read_table(tmp_path / "corpus.parquet").to_pylist()
    assert rows and all(r["teacher_marker_rate"] is None and r["student_marker_rate"] is None for r in rows)


def test_missing_traces_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="cooperative_traces"):
        build_sft_corpus(tmp_path / "nope.parquet", tmp_path / "c.parquet", 10, student=THINK)


def test_records_are_written_in_the_students_own_format(traces_path, tmp_path):
    """The assistant turn follows the student's chat template: a Qwen3-style student gets <think> sections,
    a GPT-OSS-style (harmony) student its analysis and final channels."""
    for name in ("qwen3", "gpt_oss"):
        save_tokenizer_folder(tmp_path / name, name)
        build_sft_corpus(traces_path, tmp_path / f"{name}.parquet", max_student_tokens=100, student=tmp_path / name)
    _, think = load_chat_records(tmp_path / "qwen3.parquet")[0]
    assert think == "<think>\nNow then, Step 1 adds 1: (x + 1).\n</think>\n\ndef f(x): return x+1"
    _, harmony = load_chat_records(tmp_path / "gpt_oss.parquet")[0]
    assert harmony == ("<|channel|>analysis<|message|>Now then, Step 1 adds 1: (x + 1).<|end|>"
                       "<|start|>assistant<|channel|>final<|message|>def f(x): return x+1")
    save_tokenizer_folder(tmp_path / "chatml", "chatml")
    with pytest.raises(ValueError, match="chatml: the chat template has no thinking section"):
        build_sft_corpus(traces_path, tmp_path / "c.parquet", 100, student=tmp_path / "chatml")
