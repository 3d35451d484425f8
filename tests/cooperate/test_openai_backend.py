"""The `openai` backend against a small OpenAI-compatible server started by the test (a real HTTP server
around the micro models), and the engine on top of it."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from tessy_dagster.cooperate.generation import load_generator
from tessy_dagster.cooperate.hf_backend import HFGenerator
from tessy_dagster.cooperate.openai_backend import OpenAIGenerator
from tessy_dagster.cooperate.run import write_traces
from tessy_dagster.settings import GenerationSettings, SamplingSettings

SERVER = Path(__file__).parent / "completions_server.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(model_dir, fail_first=0, api_key=None):
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), "--model", str(model_dir), "--port", str(port),
                                "--fail-first", str(fail_first), *(["--api-key", api_key] if api_key else [])])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(url + "/health", timeout=1).ok:
                return process, url
        except requests.ConnectionError:
            pass
        assert process.poll() is None and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def servers(micro_world):
    started = {role: _serve(micro_world[role]) for role in ("teacher", "student")}
    yield {role: url for role, (_, url) in started.items()}
    for process, _ in started.values():
        process.terminate()
        process.wait(timeout=30)


def _settings(servers, **extra):
    return GenerationSettings(backend="openai", urls=servers, served_names={"teacher": "teacher", "student": "student"},
                              **extra)


def test_batched_requests_come_back_in_order_with_finish_reasons(servers, micro_world):
    generator = load_generator(micro_world["teacher"], _settings(servers), role="teacher")
    prompts = [generator.chat_prompt(f"Write a Python function f(x) that transforms x in order: step 1 adds {k}.")
               for k in range(1, 7)]
    greedy = SamplingSettings(temperature=0.0)
    outs = generator.generate(prompts, 24, greedy, stop_at_think_end=True)
    assert len(outs) == 6 and generator.requests == 6
    # the prompt tokens the server says it computed and found in its cache (this one keeps none)
    assert generator.computed_tokens == sum(generator.count_tokens(prompts)) and generator.reused_tokens == 0
    # each answer belongs to its own prompt: the same greedy text as the model run in-process, one by one
    local = HFGenerator(micro_world["teacher"], batch_size=1)
    assert outs == local.generate(prompts, 24, greedy, stop_at_think_end=True)
    assert all(o.finish_reason in ("think_end", "stop", "length") and o.n_tokens > 0 for o in outs)
    short = generator.generate(prompts[:1], 2, SamplingSettings(), stop_at_think_end=True)
    assert short[0].finish_reason == "length" and short[0].n_tokens == 2


def test_overloaded_servers_are_retried_with_backoff(micro_world):
    process, url = _serve(micro_world["teacher"], fail_first=2)
    try:
        generator = OpenAIGenerator(url, "teacher", micro_world["teacher"], concurrency=1,
                                    max_retries=3, backoff_s=0.01)
        [out] = generator.generate(["hello"], 3, SamplingSettings(), stop_at_think_end=False)
        assert generator.requests == 3 and out.n_tokens > 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_api_key_comes_from_the_environment_variable_the_settings_name(micro_world, monkeypatch):
    """As under the kubernetes launcher: the settings name a variable, a Secret fills it in the pod."""
    process, url = _serve(micro_world["teacher"], api_key="s3cret")
    try:
        settings = GenerationSettings(backend="openai", urls={"teacher": url}, served_names={"teacher": "teacher"},
                                      api_key_env={"teacher": "TESSY_TEST_TEACHER_KEY"}, max_retries=0)
        monkeypatch.delenv("TESSY_TEST_TEACHER_KEY", raising=False)
        with pytest.raises(ValueError, match="TESSY_TEST_TEACHER_KEY .* is not set"):
            load_generator(micro_world["teacher"], settings, role="teacher")
        monkeypatch.setenv("TESSY_TEST_TEACHER_KEY", "wrong")
        with pytest.raises(RuntimeError, match="HTTP 401"):
            load_generator(micro_world["teacher"], settings, role="teacher").generate(
                ["hello"], 3, SamplingSettings(), stop_at_think_end=False)
        monkeypatch.setenv("TESSY_TEST_TEACHER_KEY", "s3cret")
        [out] = load_generator(micro_world["teacher"], settings, role="teacher").generate(
            ["hello"], 3, SamplingSettings(), stop_at_think_end=False)
        assert out.n_tokens > 0
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_refusals_and_dead_servers_fail_with_the_url(servers, micro_world):
    wrong_name = OpenAIGenerator(servers["teacher"], "no-such-model", micro_world["teacher"])
    with pytest.raises(RuntimeError, match="HTTP 404"):
        wrong_name.generate(["hello"], 3, SamplingSettings(), stop_at_think_end=False)
    assert wrong_name.requests == 1  # a refusal is not retried
    dead = OpenAIGenerator(f"http://127.0.0.1:{_free_port()}", "teacher", micro_world["teacher"],
                           max_retries=2, backoff_s=0.01)
    with pytest.raises(RuntimeError, match="no answer after 3 attempts"):
        dead.generate(["hello"], 3, SamplingSettings(), stop_at_think_end=False)
    with pytest.raises(ValueError, match="generation.urls has no server for 'student'"):
        load_generator(micro_world["student"], GenerationSettings(backend="openai"), role="student")


def test_the_engine_runs_tessy_over_the_openai_backend(servers, micro_world, micro, tmp_path):
    settings = micro.cooperate.model_copy(update={"generation": _settings(servers, concurrency=4)})
    metrics = write_traces(arm="tessy", teacher_dir=micro_world["teacher"], student_dir=micro_world["student"],
                           boundary_dir=micro_world["boundary"], prompts_path=micro_world["prompts"] / "prompts.parquet",
                           digests={}, settings=settings, context_tokens=micro.boundary.context_tokens,
                           out_dir=tmp_path, work_dir=tmp_path / "work", progress=lambda m: None)
    rows = pq.read_table(tmp_path / "traces.parquet").to_pylist()
    assert metrics["traces"] == len(rows) == micro.toyworld.n_prompts
    assert all(r["spans"] and r["spans"][0]["author"] == "student" for r in rows if r["thinking"])


def test_without_a_round_barrier_the_engine_writes_the_round_engines_traces(servers, micro_world, micro):
    """Greedy decoding on the test servers: each sequence sending its next request as soon as its chunk is
    cut (pipelined) sends exactly the requests the round engine sends, only sooner, so the traces agree row
    by row; the rows come back in prompt order."""
    from tessy_dagster.boundary.model import BoundaryPredictor
    from tessy_dagster.cooperate.engine import CooperativeEngine

    prompts = [(r["problem_id"], r["prompt"])
               for r in pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist()]
    rows = {}
    for pipelined in (False, True):
        settings = micro.cooperate.model_copy(update={
            "generation": _settings(servers, concurrency=4), "sampling": SamplingSettings(temperature=0.0),
            "pipelined_requests": pipelined})
        models = {role: load_generator(micro_world[role], settings.generation, role=role)
                  for role in ("teacher", "student")}
        boundary = BoundaryPredictor(micro_world["boundary"], context_tokens=micro.boundary.context_tokens)
        rows[pipelined] = CooperativeEngine(models, boundary, settings, {}, progress=lambda m: None).run("tessy", prompts)
    assert [r["prompt_id"] for r in rows[True]] == [pid for pid, _ in prompts]
    by_prompt = {r["prompt_id"]: r for r in rows[False]}
    for row in rows[True]:
        same = by_prompt[row["prompt_id"]]
        for field in ("spans", "answer", "n_switches", "rollback_tokens", "rounds", "ended", "attempts"):
            assert row[field] == same[field], (row["prompt_id"], field)
    assert any(r["n_switches"] for r in rows[True])


def test_boundary_traces_and_benchmark_answers_come_from_the_openai_backend(servers, micro_world, micro, tmp_path):
    """The boundary dataset's trace sampling and the scorer take the backend from settings, as the engine does:
    here both talk to the test servers, and the step still writes windows and judged score rows."""
    from tessy_dagster.boundary.dataset import sample_windows
    from tessy_dagster.evaluate.run import score_model

    prompts = pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist()[:4]
    boundary = micro.boundary.model_copy(update={"trace_generation": _settings(servers, concurrency=4)})
    windows, metrics = sample_windows(model_dirs={"teacher": micro_world["teacher"], "student": micro_world["student"]},
                                      prompts=prompts, settings=boundary, progress=lambda m: None)
    assert windows and {w.source_model for w in windows} <= {"teacher", "student"}
    assert set(metrics) == {"responses_too_short_teacher", "responses_too_short_student"}
    out = tmp_path / "scores"
    out.mkdir()
    flat = score_model(model_dir=micro_world["teacher"], benchmark_path=micro_world["benchmark"] / "problems.parquet",
                       settings=micro.evaluate, generation=_settings(servers, concurrency=4), role="teacher",
                       out_dir=out, progress=lambda m: None)
    rows = pq.read_table(out / "scores.parquet").to_pylist()
    assert len(rows) == 3 * micro.toyworld.n_heldout_per_steps and all(r["status"] for r in rows)
    assert 0.0 <= flat["toy.pass@1"] <= 1.0
