import pyarrow as pa
import pyarrow.parquet  # noqa: F401  (pa.parquet)
import pytest

from chat_templates import save_tokenizer_folder
from tessy_dagster import schemas
from tessy_dagster.chat_format import THINK
from tessy_dagster.corpus.filters import build_sft_corpus, load_chat_records
from tessy_dagster.settings import CorpusFilters, StyleLexicons
from tessy_dagster.storage import write_table

NO_BENCHMARK = CorpusFilters.model_validate({"decontamination": {"enabled": False}})

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
    stats = build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK,
                     filters=NO_BENCHMARK)
    assert stats["traces"] == 6 and stats["records"] == 2
    assert stats["dropped_ended_length_budget"] == 1 and stats["dropped_over_budget"] == 1
    assert stats["dropped_answer_length"] == 1 and stats["dropped_empty_answer"] == 1
    assert stats["mean_teacher_token_share"] == pytest.approx((30 / 40 + 40 / 40) / 2)


def test_records_load_through_datasets_as_two_turn_chats(traces_path, tmp_path):
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK,
                     filters=NO_BENCHMARK)
    records = load_chat_records(tmp_path / "corpus.parquet")
    prompt, assistant = records[0]
    assert prompt == "Write f(x) that adds 1."
    assert assistant.startswith("<think>\nNow then,") and "\n</think>\n\ndef f(x)" in assistant


def test_drift_metrics_per_trace(traces_path, tmp_path):
    lexicons = StyleLexicons(teacher=("Hmm, wait.", "Let me think."), student=("Now then,",))
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK,
                     lexicons=lexicons, filters=NO_BENCHMARK)
    table = pa.parquet.read_table(tmp_path / "drift_metrics.parquet").to_pylist()
    by_id = {r["prompt_id"]: r for r in table}
    assert by_id["a"]["teacher_marker_rate"] == 0 and by_id["a"]["student_marker_rate"] > 0
    assert by_id["b"]["teacher_marker_rate"] == pytest.approx(100 * 2 / 12)  # 2 markers in 12 words


def test_without_a_lexicon_the_marker_rates_are_null(traces_path, tmp_path):
    build_sft_corpus(traces_path, tmp_path / "corpus.parquet", max_student_tokens=100, student=THINK,
                     filters=NO_BENCHMARK)
    rows = pa.parquet.read_table(tmp_path / "drift_metrics.parquet").to_pylist()
    assert rows and all(r["teacher_marker_rate"] is None and r["student_marker_rate"] is None for r in rows)


def test_missing_traces_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="cooperative_traces"):
        build_sft_corpus(tmp_path / "nope.parquet", tmp_path / "c.parquet", 10, student=THINK,
                     filters=NO_BENCHMARK)


def test_records_are_written_in_the_students_own_format(traces_path, tmp_path):
    """The assistant turn follows the student's chat template: a Qwen3-style student gets <think> sections,
    a GPT-OSS-style (harmony) student its analysis and final channels."""
    for name in ("qwen3", "gpt_oss"):
        save_tokenizer_folder(tmp_path / name, name)
        build_sft_corpus(traces_path, tmp_path / f"{name}.parquet", max_student_tokens=100, student=tmp_path / name,
                         filters=NO_BENCHMARK)
    _, think = load_chat_records(tmp_path / "qwen3.parquet")[0]
    assert think == "<think>\nNow then, Step 1 adds 1: (x + 1).\n</think>\n\ndef f(x): return x+1"
    _, harmony = load_chat_records(tmp_path / "gpt_oss.parquet")[0]
    assert harmony == ("<|channel|>analysis<|message|>Now then, Step 1 adds 1: (x + 1).<|end|>"
                       "<|start|>assistant<|channel|>final<|message|>def f(x): return x+1")
    save_tokenizer_folder(tmp_path / "chatml", "chatml")
    with pytest.raises(ValueError, match="chatml: the chat template has no thinking section"):
        build_sft_corpus(traces_path, tmp_path / "c.parquet", 100, student=tmp_path / "chatml", filters=NO_BENCHMARK)


# ---- the quality filters, through build_sft_corpus ------------------------------------------------------------

TOY_TESTS = '{"function_name": "f", "cases": [[1, 2]]}'
LONG = "Step 1 adds one: (x + 1). " + " ".join(f"Case {i} gives {i + 1}." for i in range(30))  # 126 words
BENCH_PROBLEM = ("Given a list of integers, return the sum of the squares of the odd numbers that appear at even "
                 "positions in the list, ignoring negative values entirely.")


def _write(path, rows, schema):
    write_table(pa.Table.from_pylist(rows, schema=schema), path, schema)
    return path


@pytest.fixture
def world(tmp_path):
    """Traces with one reason to drop each (and two kept), the prompts' tests, a benchmark of two suites."""
    traces = [
        _trace("p00", thinking=LONG),  # kept
        _trace("p01", ended="repetition"),  # fixed filters first, whatever else is wrong with it
        _trace("p02", thinking="Step 1.</think>\n<think>Step 2."),
        _trace("p03", answer="It adds one."),  # a code prompt (its tests say so) without code
        _trace("p04", prompt="Please solve: " + BENCH_PROBLEM, answer="def g(xs): return 0"),
        _trace("p05", prompt="What is 6 times 7?", answer="42"),  # the math suite's problem itself
        _trace("p06", thinking=LONG.upper()),  # p00's words again: an exact duplicate
        _trace("p07", thinking=LONG.replace("Case 15", "Test 15")),  # 5 of 133 shingles changed: near p00
        _trace("p08", prompt="What is 5 times 8?", answer="40"),  # kept: no code asked, no code needed
    ]
    prompts = [{"problem_id": t["prompt_id"], "prompt": t["prompt"], "tests": TOY_TESTS, "difficulty": "",
                "source": "t", "source_file": "t", "source_row": i} for i, t in enumerate(traces)]
    prompts[5]["tests"] = prompts[8]["tests"] = '{"answer": "42"}'
    benchmark = [{"problem_id": pid, "suite": suite, "kind": kind, "prompt": prompt, "tests": "", "difficulty": "",
                  "release_date": "", "source_file": "b", "source_row": i}
                 for i, (pid, suite, kind, prompt) in enumerate([
                     ("h1", "humaneval", "humaneval", BENCH_PROBLEM),
                     ("h2", "humaneval", "humaneval", "Return the largest prime factor of n, assuming n > 1."),
                     ("m1", "math", "final_answer", "What is 6 times 7?")])]
    return {"traces": _write(tmp_path / "traces.parquet", traces, schemas.TRACES),
            "prompts": _write(tmp_path / "prompts.parquet", prompts, schemas.PROMPTS),
            "benchmark": _write(tmp_path / "problems.parquet", benchmark, schemas.BENCHMARK_PROBLEMS),
            "out": tmp_path / "out" / "corpus.parquet"}


def _build(world, **kwargs):
    world["out"].parent.mkdir(exist_ok=True)
    return build_sft_corpus(world["traces"], world["out"], 100, student=THINK, benchmark_path=world["benchmark"],
                            prompts_path=world["prompts"], **kwargs)


def test_every_trace_is_kept_or_dropped_for_one_counted_reason(world):
    stats = _build(world)
    assert stats["traces"] == 9 and stats["records"] == 2 and stats["dropped"] == 7
    assert {k: v for k, v in stats.items() if k.startswith("dropped_")} == {
        "dropped_ended_repetition": 1, "dropped_extra_thinking_section": 1, "dropped_no_code_block": 1,
        "dropped_contaminated_humaneval": 1, "dropped_contaminated_math": 1, "dropped_duplicate_exact": 1,
        "dropped_near_duplicate": 1}
    assert [r["prompt_id"] for r in pa.parquet.read_table(world["out"]).to_pylist()] == ["p00", "p08"]
    dropped = {r["prompt_id"]: r for r in pa.parquet.read_table(world["out"].parent / "dropped.parquet").to_pylist()}
    assert sorted(dropped) == ["p01", "p02", "p03", "p04", "p05", "p06", "p07"]
    assert dropped["p04"]["reason"] == "contaminated_humaneval" and "problem h1" in dropped["p04"]["detail"]
    assert "13-gram" in dropped["p04"]["detail"] and "prompt shares" in dropped["p04"]["detail"]
    assert dropped["p06"]["reason"] == "duplicate_exact" and "duplicates p00" in dropped["p06"]["detail"]
    assert dropped["p07"]["reason"] == "near_duplicate" and "duplicates p00" in dropped["p07"]["detail"]
    assert dropped["p02"]["detail"] == "'</think>' in the thinking"
    assert dropped["p01"]["detail"] == "ended: repetition"


def test_each_filter_is_a_setting(world):
    off = CorpusFilters.model_validate({name: {"enabled": False}
                                       for name in ("structure", "decontamination", "dedup")})
    stats = _build(world, filters=off)
    assert stats["records"] == 8 and stats["dropped"] == 1 and stats["dropped_ended_repetition"] == 1
    assert stats["filter_dedup_on"] == 0
    fenced = CorpusFilters.model_validate({"structure": {"code_block": "fenced"}})
    stats = _build(world, filters=fenced)  # the bare `def ...` answers no longer count as code
    # p03 as before, and now p00, p04, p06, p07 (structure comes before decontamination and dedup)
    assert stats["records"] == 1 and stats["dropped_no_code_block"] == 5


def test_without_the_prompts_table_the_keyword_rule_decides(world):
    world["out"].parent.mkdir(exist_ok=True)
    stats = build_sft_corpus(world["traces"], world["out"], 100, student=THINK, benchmark_path=world["benchmark"])
    # "Write f(x) that adds 1." names no code noun after a verb: the keyword rule asks for no code here
    assert "dropped_no_code_block" not in stats and stats["records"] == 3


def test_the_corpus_loads_with_datasets_as_chat_messages(world):
    from datasets import load_dataset

    _build(world)
    ds = load_dataset("parquet", data_files=str(world["out"]), split="train")
    assert ds.num_rows == 2 and ds["prompt_id"] == ["p00", "p08"]
    messages = ds[1]["messages"]
    assert messages == [{"role": "user", "content": "What is 5 times 8?"},
                        {"role": "assistant", "content": "<think>\nNow then, Step 1 adds 1: (x + 1).\n</think>\n\n40"}]


def test_a_missing_benchmark_table_is_named(world, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope/problems.parquet is missing: materialize benchmark"):
        build_sft_corpus(world["traces"], world["out"], 100, student=THINK,
                         benchmark_path=tmp_path / "nope" / "problems.parquet")
    with pytest.raises(ValueError, match="decontamination needs the benchmark table"):
        build_sft_corpus(world["traces"], world["out"], 100, student=THINK)
    with pytest.raises(FileNotFoundError, match=r"prompts.parquet is missing: materialize prompts"):
        build_sft_corpus(world["traces"], world["out"], 100, student=THINK, benchmark_path=world["benchmark"],
                         prompts_path=tmp_path / "nope" / "prompts.parquet")
    assert not world["out"].exists()
