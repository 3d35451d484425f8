import pytest

from tessy_dagster.cooperate.hf_backend import HFGenerator
from tessy_dagster.evaluate.run import score_model
from tessy_dagster.evaluate.scoring import split_response, summarize
from tessy_dagster.storage import read_table


def test_split_response():
    assert split_response("Now then, go\n</think>\n\ndef f(x): return x") == ("Now then, go", "def f(x): return x")
    assert split_response("never closed") == ("never closed", "")


def test_summarize_per_step_count():
    rows = [{"n_steps": 1, "passed": True, "answer": "a", "teacher_marker_rate": 0.0, "student_marker_rate": 2.0},
            {"n_steps": 3, "passed": False, "answer": "", "teacher_marker_rate": 4.0, "student_marker_rate": 0.0}]
    s = summarize(rows)
    assert s["pass_at_1"] == 0.5 and s["pass_at_1_1_step"] == 1.0 and s["pass_at_1_3_step"] == 0.0
    assert s["teacher_marker_rate"] == 2.0 and s["answered_share"] == 0.5
    with pytest.raises(ValueError):
        summarize([])


def test_scoring_a_real_tiny_model_writes_rows_and_summary(micro_world, micro, tmp_path):
    summary = score_model(model_dir=micro_world["teacher"], benchmark_path=micro_world["benchmark"] / "problems.parquet",
                          settings=micro.evaluate, out_dir=tmp_path, progress=lambda m: None)
    rows = read_table(tmp_path / "scores.parquet").to_pylist()
    assert len(rows) == summary["problems"] == 3 * micro.toyworld.n_heldout_per_steps
    assert {r["status"] for r in rows} <= {"passed", "failed", "error", "timeout", "no_function", "memory",
                                           "crashed", "no_answer"}
    assert summary["pass_at_1"] == sum(r["passed"] for r in rows) / len(rows)
    assert (tmp_path / "summary.json").exists()


def test_batched_generation_reports_counts_and_reasons(micro_world, micro):
    gen = HFGenerator(micro_world["student"], batch_size=2)
    prompts = [gen.chat_prompt("Write a Python function f(x) that adds 3.")] * 3
    outs = gen.generate(prompts, 6, micro.cooperate.sampling, stop_at_think_end=True)
    assert len(outs) == 3
    for o in outs:
        assert 0 <= o.n_tokens <= 6 and o.finish_reason in ("length", "stop", "think_end")
        assert o.n_tokens == 6 or o.finish_reason != "length"
