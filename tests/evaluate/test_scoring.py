import json

import pyarrow as pa
import pytest

from tessy_dagster import schemas
from tessy_dagster.cooperate.hf_backend import HFGenerator
from tessy_dagster.evaluate.benchmarks import load_suite
from tessy_dagster.evaluate.run import flat_summary, score_model
from tessy_dagster.settings import BenchmarkSuite
from tessy_dagster.storage import read_table, write_table


def test_flat_summary_names_suite_bucket_and_score():
    summary = {"toy": {"pass@1": 0.5, "n_problems": 2, "by_difficulty": {"3-step": {"pass@1": 0.0}},
                       "by_release_month": {}}}
    assert flat_summary(summary) == {"toy.pass@1": 0.5, "toy.n_problems": 2, "toy.3-step.pass@1": 0.0}


def test_scoring_a_real_tiny_model_on_two_suites(micro_world, micro, tmp_path):
    """The micro teacher answers the toy suite and 3 HumanEval problems, 2 samples each; every row is judged
    or says why not, and the summary's pass@1 is the mean of the rows."""
    toy = read_table(micro_world["benchmark"] / "problems.parquet").to_pylist()
    humaneval = load_suite(BenchmarkSuite(kind="humaneval", limit=3))
    benchmark = tmp_path / "problems.parquet"
    write_table(pa.Table.from_pylist(toy + humaneval, schema=schemas.BENCHMARK_PROBLEMS), benchmark,
                schemas.BENCHMARK_PROBLEMS)
    settings = micro.evaluate.model_copy(update={"samples_per_problem": 2, "pass_at_k": (1, 2)})
    out = tmp_path / "out"
    out.mkdir()
    flat = score_model(model_dir=micro_world["teacher"], benchmark_path=benchmark, settings=settings, out_dir=out,
                       lexicons=micro.lexicons, progress=lambda m: None)
    rows = read_table(out / "scores.parquet").to_pylist()
    assert len(rows) == 2 * (len(toy) + 3)
    assert {r["sample"] for r in rows} == {0, 1}
    assert all(r["status"] and r["passed"] == (r["status"] == "passed") for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    toy_rows = [r for r in rows if r["suite"] == "toy"]
    assert summary["toy"]["pass@1"] == pytest.approx(sum(r["passed"] for r in toy_rows) / len(toy_rows))
    assert set(summary["toy"]["by_difficulty"]) == {"1-step", "2-step", "3-step"}
    assert flat["toy.pass@1"] == summary["toy"]["pass@1"] and "humaneval.pass@2" in flat
    assert all(r["teacher_marker_rate"] is not None for r in toy_rows)
    # HumanEval prompts are long in the micro tokenizer: those past its context are counted, not generated
    he = [r for r in rows if r["suite"] == "humaneval"]
    assert summary["humaneval"]["prompt_too_long"] == sum(r["status"] == "prompt_too_long" for r in he)


def test_batched_generation_reports_counts_and_reasons(micro_world, micro):
    gen = HFGenerator(micro_world["student"], batch_size=2)
    prompts = [gen.thinking_prompt("Write a Python function f(x) that adds 3.")] * 3
    outs = gen.generate(prompts, 6, micro.cooperate.sampling, stop_at_think_end=True)
    assert len(outs) == 3
    for o in outs:
        assert 0 <= o.n_tokens <= 6 and o.finish_reason in ("length", "stop", "think_end")
        assert o.n_tokens == 6 or o.finish_reason != "length"
