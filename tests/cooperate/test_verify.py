"""Execution-verified answers (rejection sampling, `cooperate.verify_answers`) and the correctness columns every
trace gets, on the micro world: real models, the real sandbox."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from tessy_dagster import schemas
from tessy_dagster.corpus.correctness import judge_traces
from tessy_dagster.cooperate.carry_over import prompt_seed
from tessy_dagster.cooperate.run import sample_seed, write_traces
from tessy_dagster.settings import CooperateSettings
from tessy_dagster.storage import write_table

N = 3
IMPOSSIBLE = json.dumps({"function_name": "f", "cases": [[0, 123456789], [1, -987654321]]})


@pytest.fixture(scope="module")
def prompts(micro_world, tmp_path_factory):
    """The micro prompts, the first without tests and the second with tests no function passes."""
    rows = pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist()
    rows.sort(key=lambda r: r["problem_id"])
    rows[0]["tests"], rows[1]["tests"] = "", IMPOSSIBLE
    path = tmp_path_factory.mktemp("verify_prompts") / "prompts.parquet"
    write_table(pa.Table.from_pylist(rows, schema=schemas.PROMPTS), path, schemas.PROMPTS)
    return path, {r["problem_id"]: r["tests"] for r in rows}, rows[0]["problem_id"], rows[1]["problem_id"]


def _run(micro_world, micro, prompts_path, folder, **update):
    lines = []
    settings = micro.cooperate.model_copy(update=update)  # one shard: a draw costs the same for 1 prompt or 8
    metrics = write_traces(arm="tessy", teacher_dir=micro_world["teacher"], student_dir=micro_world["student"],
                           boundary_dir=micro_world["boundary"], prompts_path=prompts_path,
                           digests={"teacher_model": "t", "student_model": "s", "boundary_model": "b"},
                           settings=settings, context_tokens=micro.boundary.context_tokens,
                           out_dir=folder, work_dir=folder / "work", progress=lines.append)
    return metrics, pq.read_table(folder / "traces.parquet").to_pylist(), lines


@pytest.fixture(scope="module")
def runs(micro_world, micro, prompts, tmp_path_factory):
    path = prompts[0]
    return {"off": _run(micro_world, micro, path, tmp_path_factory.mktemp("off")),
            "on": _run(micro_world, micro, path, tmp_path_factory.mktemp("on"), verify_answers={"tessy": N})}


def test_without_verification_every_prompt_is_drawn_once_and_judged(runs, prompts):
    metrics, rows, lines = runs["off"]
    _, tests, no_tests, impossible = prompts
    assert all(r["sample"] == 1 for r in rows)
    by_id = {r["prompt_id"]: r for r in rows}
    assert by_id[no_tests]["answer_passed"] is None and by_id[no_tests]["thinking_passed"] is None
    assert by_id[impossible]["answer_passed"] is False and by_id[impossible]["thinking_passed"] is False
    judged = [r for r in rows if r["prompt_id"] != no_tests]
    assert all(isinstance(r["answer_passed"], bool) and isinstance(r["thinking_passed"], bool) for r in judged)
    # the columns hold the judge's verdicts on the rows as written
    again = judge_traces(rows, tests)
    assert [(v["thinking_passed"], v["answer_passed"]) for v in again] == \
        [(r["thinking_passed"], r["answer_passed"]) for r in rows]
    assert metrics["judged_traces"] == len(judged)
    assert metrics["answer_pass_rate"] == sum(r["answer_passed"] for r in judged) / len(judged)
    assert metrics["thinking_pass_rate"] == sum(r["thinking_passed"] for r in judged) / len(judged)
    assert "samples_drawn" not in metrics and "verified_pass_rate" not in metrics
    assert not any("sample 2/" in line for line in lines)


def test_verification_keeps_a_passing_sample_and_draws_failing_prompts_again(runs, prompts, micro):
    metrics, rows, lines = runs["on"]
    _, _, no_tests, impossible = prompts
    by_id = {r["prompt_id"]: r for r in rows}
    assert sorted(by_id) == sorted(prompts[1]) and len(rows) == len(by_id)
    assert all(1 <= r["sample"] <= N for r in rows)
    # no tests: drawn once, not judged; tests nothing passes: drawn N times, kept failing
    assert by_id[no_tests]["sample"] == 1 and by_id[no_tests]["answer_passed"] is None
    assert by_id[impossible]["sample"] == N and by_id[impossible]["answer_passed"] is False
    # a prompt kept before its N-th sample was kept because it passed; one that fails used every sample
    for r in rows:
        if r["answer_passed"] is not None and r["sample"] < N:
            assert r["answer_passed"] is True
        if r["answer_passed"] is False:
            assert r["sample"] == N
    # each row records the seed of its own draw
    assert all(r["seed"] == sample_seed(prompt_seed(micro.cooperate.seed, r["prompt_id"]), r["sample"]) for r in rows)
    judged = [r for r in rows if r["answer_passed"] is not None]
    assert metrics["samples_drawn"] == sum(r["sample"] for r in rows) >= len(rows) + N - 1
    assert metrics["verified_pass_rate"] == sum(r["answer_passed"] for r in judged) / len(judged)
    assert metrics["judged_traces"] == len(judged)
    assert any(f"sample 2/{N}" in line for line in lines)
    assert any(f"sample {N}/{N}" in line and "never passed" in line for line in lines)


def test_verification_passes_at_least_as_often_as_one_draw(runs):
    # the first draw of a prompt uses the prompt's own seed, as without verification
    off, on = runs["off"][0], runs["on"][0]
    assert on["verified_pass_rate"] >= off["answer_pass_rate"]


def test_verify_answers_names_known_arms_and_a_positive_count():
    assert CooperateSettings().verify_answers == {}
    assert CooperateSettings(verify_answers={"tessy": 4}).verify_answers == {"tessy": 4}
    with pytest.raises(ValidationError, match="verify_answers"):
        CooperateSettings(verify_answers={"nope": 2})
    with pytest.raises(ValidationError, match="verify_answers"):
        CooperateSettings(verify_answers={"tessy": 0})
