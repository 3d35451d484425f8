"""`make demo`'s terminal: progress read from Dagster's console lines (as a real run printed them), the lines it
draws, and the plan of materializations it reads from the asset graph."""

import io
import re

from tessy_dagster.console import (Console, StepView, bar, elapsed, finished_line, parse_progress, running_line,
                                   step_message)
from tessy_dagster.demo import failure_note, materialize_command, next_task, plan, read_graph

# Lines of one `dagster asset materialize --select student_model` run of the demo (micro profile), as it printed them.
STUDENT_MODEL_RUN = """\
/work/main/.venv/lib/python3.11/site-packages/dagster/_core/pipes/context.py:104: PreviewWarning: Function `PipesMessageReader.expected_writer_count` is currently in preview, and may have breaking changes in patch version releases.
  self._expected_writers = message_reader.expected_writer_count
2026-12-03 04:21:21 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - launching step toy_model (local): /work/main/.venv/bin/python -m tessy_dagster.steps.toy_model ...
2026-12-03 04:21:24 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - [pipes] external process successfully opened dagster pipes.
2026-12-03 04:22:19 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - student: 400 training traces; training the tokenizer
2026-12-03 04:22:22 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - student: qwen3 model with 0.04M parameters; training for 120 s or 300 steps, whichever comes first
2026-12-03 04:22:43 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - step 50/300 (16% of the step or time budget), loss 4.2962, 4762 tok/s
2026-12-03 04:22:59 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - step 100/300 (33% of the step or time budget), loss 2.2477, 5223 tok/s
2026-12-03 04:23:21 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - step 150/300 (50% of the step or time budget), loss 1.2426, 4769 tok/s
2026-12-03 04:23:42 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - step 200/300 (66% of the step or time budget), loss 0.8532, 4671 tok/s
2026-12-03 04:23:58 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - step 250/300 (83% of the step or time budget), loss 0.6921, 4830 tok/s
2026-12-03 04:24:10 +0000 - dagster - INFO - __ASSET_JOB - ba207850-684d-4bae-af8d-2bca55cf3f02 - student_model - step 300/300 (100% of the step or time budget), loss 0.6183, 5140 tok/s
""".splitlines()


def test_a_real_runs_progress_is_read_from_its_step_lines_only():
    messages = [m for m in (step_message(line, "student_model") for line in STUDENT_MODEL_RUN) if m is not None]
    assert messages[0].startswith("launching step toy_model")  # the launcher's line is the first status
    assert not any(m.startswith("[pipes]") for m in messages)  # Dagster's plumbing is not progress
    assert not any("PreviewWarning" in m or "expected_writers" in m for m in messages)  # nor a library's stderr
    assert len(messages) == 9
    progress = [parse_progress(m) for m in messages]
    assert [(p.done, p.total) for p in progress if p.done is not None] == [(n, 300) for n in range(50, 301, 50)]
    assert progress[1].fraction is None and progress[1].text == "student: 400 training traces; training the tokenizer"
    assert progress[-1].fraction == 1.0
    # the same run's lines name another step: nothing of it is this one's progress
    assert all(step_message(line, "teacher_model") is None for line in STUDENT_MODEL_RUN)


def test_event_lines_and_other_levels_carry_no_progress():
    failure = ("2026-12-03 04:25:31 +0000 - dagster - ERROR - __ASSET_JOB - 4f15097a-750a-42a1-8e78-8460c207f3a3 - "
               "3312 - sft_corpus - STEP_FAILURE - Execution of step \"sft_corpus\" failed.")
    debug = ("2026-12-03 04:09:11 +0000 - dagster - DEBUG - __ASSET_JOB - 4cf8b19d-d4b9-4cf0-b844-0cd544a02bfb - "
             "12222 - benchmark - STEP_SUCCESS - Finished execution of step \"benchmark\" in 4.63s.")
    assert step_message(failure, "sft_corpus") is None
    assert step_message(debug, "benchmark") is None
    warning = ("2026-12-03 04:30:00 +0000 - dagster - WARNING - __ASSET_JOB - 4f15097a-750a-42a1-8e78-8460c207f3a3 - "
               "arm_comparison - not scored (no benchmark_scores artifact): teacher_think; compared without them")
    assert step_message(warning, "arm_comparison").startswith("not scored")


def test_counted_lines_are_those_that_start_with_a_word_and_a_count():
    cases = {"shard 3/4 written (256 traces, answers passing 0.667)": (3, 4),
             "epoch 2/8 of B_T: train loss 0.0123, validation token accuracy 0.9973": (2, 8),
             "windows 256/2468 annotated (lexicon): 0 rejected so far": (256, 2468),
             "step 10/48, epoch 0.62, loss 0.9132, 3164 tok/s": (10, 48),
             "answers 64/464 generated": (64, 464)}
    for text, counted in cases.items():
        p = parse_progress(text)
        assert (p.done, p.total) == counted, text
    for text in ("judging 300 answers in the sandbox", "0.91/0.88 loss", "student NLL: batch 10/30",
                 "step 5/0", "reported epoch 3 (last); final loss 0.188"):
        assert parse_progress(text).done is None, text
    assert parse_progress("shard 5/4 written").fraction == 1.0  # never past the end of the bar


def test_running_and_finished_lines():
    step = StepView("student_checkpoint [tessy]", started=100.0, status="running",
                    progress=parse_progress("step 12/48, epoch 0.75, loss 0.9132, 3164 tok/s"))
    line = running_line(step, now=162.0, width=120, label_width=28)
    assert line == ("  student_checkpoint [tessy]     1m02s  [#####...............] "
                    "step 12/48, epoch 0.75, loss 0.9132, 3164 tok/s")
    assert len(running_line(step, now=162.0, width=60, label_width=28)) == 59  # cut to the terminal
    status = StepView("boundary_dataset", started=0.0, status="running",
                      progress=parse_progress("sampling 400 thinking traces from the teacher"))
    assert "[" not in running_line(status, 5.0, 120, 20).split("5s")[1][:3]  # no bar without a count
    step.ended, step.status = 305.0, "ok"
    assert finished_line(step, 28) == "ok       student_checkpoint [tessy]     3m25s"
    skipped = StepView("benchmark_scores [tessy]", status="skipped", note="(needs sft_corpus [tessy])")
    assert finished_line(skipped, 28) == "skipped  benchmark_scores [tessy]  (needs sft_corpus [tessy])"
    assert bar(0.0, 4) == "[....]" and bar(0.5, 4) == "[##..]" and bar(1.0, 4) == "[####]"
    assert elapsed(59.9) == "59s" and elapsed(3725) == "62m05s"


def test_plain_output_is_sparse_and_ends_with_one_line_per_step():
    out, kept = io.StringIO(), []
    console = Console(stream=out, live=False, label_width=14, log=kept.append)
    step = StepView("student_model")
    console.start(step, now=0.0)
    for t, line in enumerate(STUDENT_MODEL_RUN):
        message = step_message(line, "student_model")
        if message is not None:
            console.progress(step, message, now=float(t))
    console.finish(step, now=212.0, ok=True)
    lines = out.getvalue().splitlines()
    assert lines[0] == "...      student_model"
    # status lines wait a minute; counted ones show at each new quarter: 16% (0), 33% (1), 50% (2), 83% (3), 100%
    assert [re.search(r" step (\d+)/300 ", line).group(1) for line in lines[1:-1]] == ["50", "100", "150", "250",
                                                                                      "300"]
    assert lines[-1] == "ok       student_model    3m32s"
    assert kept == ["ok       student_model    3m32s"]  # the log keeps the lines that stay


def test_live_output_redraws_the_running_steps_and_keeps_finished_lines():
    out = io.StringIO()
    console = Console(stream=out, live=True, label_width=14)
    teacher, student = StepView("teacher_model"), StepView("student_model")
    console.start(teacher, now=0.0)
    console.start(student, now=0.0)
    console.progress(student, "step 50/400 (13% of the step or time budget), loss 2.0676, 1444 tok/s", now=30.0)
    console.finish(student, now=188.0, ok=True)
    console.tick(now=200.0)
    text = out.getvalue()
    assert text.count("ok       student_model") == 1
    assert "\x1b[2F\x1b[J" in text  # the two running lines were taken back before the finished line
    last_frame = text.rsplit("\x1b[J", 1)[1]
    assert last_frame.startswith("  teacher_model") and "student_model" not in last_frame


def test_a_reused_artifact_is_reported_as_reused():
    console = Console(stream=io.StringIO(), live=False)
    step = StepView("boundary_model")
    console.start(step, now=0.0)
    console.progress(step, "/tmp/h/boundary_model/all was built from these inputs and settings already: reusing it",
                     now=3.0)
    console.finish(step, now=4.0, ok=True)
    assert step.status == "reused"


GRAPH = [  # what the demo reads from the code location (assets in dependency order), cut to a few assets
    {"asset": "benchmark", "deps": [], "partitions": None},
    {"asset": "student_model", "deps": [], "partitions": None},
    {"asset": "teacher_model", "deps": [], "partitions": None},
    {"asset": "sft_corpus", "deps": ["benchmark", "student_model"],
     "partitions": ["tessy", "teacher_only", "teacher_think", "teacher_answer"]},
    {"asset": "student_checkpoint", "deps": ["sft_corpus", "student_model"],
     "partitions": ["tessy", "teacher_only", "teacher_think", "teacher_answer"]},
    {"asset": "benchmark_scores", "deps": ["benchmark", "student_checkpoint", "student_model", "teacher_model"],
     "partitions": ["teacher", "base", "tessy", "teacher_only", "teacher_think", "teacher_answer"]},
    {"asset": "arm_comparison", "deps": ["benchmark_scores", "sft_corpus"], "partitions": None},
]


def test_the_plan_runs_the_scored_partitions_each_after_its_own_upstream():
    tasks = {t.label: t for t in plan(GRAPH, ("teacher", "base", "tessy", "teacher_only"))}
    assert "sft_corpus [teacher_think]" not in tasks and "benchmark_scores [teacher_answer]" not in tasks
    deps = {label: sorted(d.label for d in t.deps) for label, t in tasks.items()}
    assert deps["benchmark_scores [tessy]"] == ["benchmark", "student_checkpoint [tessy]", "student_model",
                                                "teacher_model"]
    assert deps["benchmark_scores [teacher]"] == ["benchmark", "student_model", "teacher_model"]  # no checkpoint
    assert deps["arm_comparison"] == sorted(["benchmark_scores [teacher]", "benchmark_scores [base]",
                                             "benchmark_scores [tessy]", "benchmark_scores [teacher_only]",
                                             "sft_corpus [tessy]", "sft_corpus [teacher_only]"])
    # what starts first: the most typical seconds of work on the longest path to the end of the graph
    assert tasks["student_model"].chain == 270 + 30 + 60 + 40 + 10  # its corpus, checkpoint, scores, comparison
    assert tasks["teacher_model"].chain == 350 + 40 + 10
    assert tasks["arm_comparison"].chain == 10


def test_each_run_is_one_asset_at_info_level_in_process_without_dagsters_two_warnings():
    [task] = [t for t in plan(GRAPH, ("tessy",)) if t.label == "sft_corpus [tessy]"]
    command = materialize_command(task)
    assert command[command.index("--select") + 1] == "sft_corpus"
    assert command[command.index("--partition") + 1] == "tessy"
    config = command[command.index("--config-json") + 1]
    assert '"log_level": "INFO"' in config and '"in_process": {}' in config
    filters = [command[i + 1] for i, a in enumerate(command) if a == "-W"]
    assert len(filters) == 2 and all(f.startswith("ignore:Function `") for f in filters)


def test_the_failure_note_is_the_last_error_line():
    tail = ["2026-12-03 04:25:31 +0000 - dagster - ERROR - __ASSET_JOB - 4f15 - sft_corpus - STEP_FAILURE - failed.",
            "Traceback (most recent call last):", "  File \"x.py\", line 1, in <module>",
            "RuntimeError: /tmp/h/sft_corpus/tessy failed the style-drift suite; not training on it",
            "  (see the UI)"]
    assert failure_note(tail).startswith("RuntimeError: /tmp/h/sft_corpus/tessy failed the style-drift suite")
    assert failure_note(["nothing useful"]) == "see the log"


def test_scoring_counts_its_answers_batch_by_batch_and_samples_what_one_call_samples(tmp_path):
    """The scores' progress (`answers 4/6 generated`, one line per hf batch) leaves the sampled answers as they
    were: the hf backend samples batch after batch from the same seeded generator either way."""
    import torch

    from tessy_dagster.cooperate.hf_backend import HFGenerator
    from tessy_dagster.evaluate.run import generate_samples
    from tessy_dagster.settings import load_settings
    from tessy_dagster.toyworld.models import build_toy_model
    from tessy_dagster.toyworld.world import benchmark_rows

    micro = load_settings("micro")
    world = micro.toyworld.model_copy(update={"n_train_problems": 60, "train_steps": 2})  # a barely trained model
    build_toy_model("student", world, tmp_path, lambda m: None)
    problems = benchmark_rows(micro.toyworld)[:6]
    settings = micro.evaluate.model_copy(update={"max_new_tokens": 24})
    generator = HFGenerator(tmp_path, batch_size=4)
    lines: list[str] = []
    rows = generate_samples(generator, problems, settings, None, lines.append)
    counted = [parse_progress(line) for line in lines if parse_progress(line).done is not None]
    assert [(p.done, p.total) for p in counted] == [(4, 6), (6, 6)]

    torch.manual_seed(settings.seed)
    once = generator.generate([generator.thinking_prompt(p["prompt"]) for p in problems], settings.max_new_tokens,
                              settings.sampling, stop_at_think_end=False)
    assert [(r["thinking"], r["answer"]) for r in rows] == [generator.format.split(o.text)[:2] for o in once]
    assert len({r["thinking"] for r in rows}) > 1  # sampled text, not one repeated string


def test_the_next_task_is_the_longest_chain_and_never_a_second_of_a_running_asset():
    tasks = {t.label: t for t in plan(GRAPH, ("teacher", "base", "tessy"))}
    ready = [tasks["benchmark_scores [teacher]"], tasks["sft_corpus [tessy]"], tasks["benchmark_scores [base]"]]
    assert next_task(ready, running=[]).label == "sft_corpus [tessy]"  # 140 s of work after it against 50
    # sft_corpus runs (another partition of it, say): the next is a score, the first ready in the graph's order
    assert next_task(ready, running=[tasks["sft_corpus [tessy]"]]).label == "benchmark_scores [teacher]"
    assert next_task(ready[:1], running=[tasks["benchmark_scores [base]"]]) is None  # one per asset, as the pools


def test_the_graph_comes_from_the_code_location_and_an_empty_home_gets_its_tables_first(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    monkeypatch.setenv("TESSY_HOME", str(tmp_path / "home"))
    (tmp_path / "dagster_home").mkdir()
    graph = read_graph(lambda label, line: None)
    order = [node["asset"] for node in graph]
    for node in graph:  # every upstream asset comes before the assets that read it
        assert all(order.index(dep) < order.index(node["asset"]) for dep in node["deps"]), node
    assert {"teacher_model", "student_model", "cooperative_traces", "benchmark_scores"} <= set(order)
    assert (tmp_path / "dagster_home" / "history" / "runs.db").exists()  # before any run starts
