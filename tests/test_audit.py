"""The lineage audit (tessy_dagster/audit.py), its named DuckDB queries (audit_queries.py) and its asset check
(assets/audit.py), on the micro graph's artifacts. A test that changes files works on a copy of the home."""

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from dagster import DagsterInstance, materialize

from conftest import BASELINES, micro_resources
from tessy_dagster.audit import EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE, audit, main
from tessy_dagster.audit_queries import QUERIES, run_query
from tessy_dagster.definitions import all_assets, all_checks
from tessy_dagster.storage import read_manifest, write_manifest

CHECKPOINT_LINEAGE = {"student_checkpoint[tessy]", "sft_corpus[tessy]", "cooperative_traces[tessy]", "prompts",
                      "benchmark", "teacher_model", "student_model", "boundary_dataset", "boundary_model",
                      "student_responses"}
ARMS_WITH_TRACES = ("tessy", "teacher_only", "teacher_think", "teacher_answer")  # and a corpus (BASELINES: traces)


def _copy(home: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    return copy


def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tessy_dagster.audit", *map(str, args)], capture_output=True,
                          text=True, timeout=300)


def _edit_traces(folder: Path) -> Path:
    """Change one trace's answer and write the table back, as a hand edit after materialization would."""
    path = folder / "traces.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["answer"] += " (edited)"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    return path


# ---- the audit ------------------------------------------------------------------------------------------------

def test_the_audit_of_a_checkpoint_reaches_every_input_and_passes(micro_graph):
    home = micro_graph.home
    report = audit(home, "student_checkpoint", "tessy")
    assert report.ok and report.exit_code == EXIT_OK, report.problems
    assert set(report.artifacts) == CHECKPOINT_LINEAGE
    for artifact in report.artifacts.values():
        assert artifact.recomputed_digest == artifact.manifest["digest"]
        assert artifact.manifest["files"], artifact.label  # per-file digests, written by storage.write_manifest
        assert artifact.manifest["code_version"] and "settings" in artifact.manifest
    edges = {(a.label, i.name): i.artifact for a in report.artifacts.values() for i in a.inputs}
    assert edges[("student_checkpoint[tessy]", "sft_corpus")] == "sft_corpus[tessy]"
    assert edges[("sft_corpus[tessy]", "cooperative_traces")] == "cooperative_traces[tessy]"
    assert edges[("cooperative_traces[tessy]", "boundary_model")] == "boundary_model"
    assert edges[("prompts", "teacher")] == "teacher_model"
    verdicts = {(a.asset, Path(v.file).name): v for a in report.artifacts.values() for v in a.verdicts}
    assert set(verdicts) == {("sft_corpus", "drift_report.json"), ("boundary_dataset", "checks.json"),
                             ("prompts", "checks.json")}
    assert all(v.passed for v in verdicts.values())
    assert "style_drift" not in verdicts[("sft_corpus", "drift_report.json")].checks  # the suite's expectations
    assert verdicts[("sft_corpus", "drift_report.json")].checks["row_count"] is True
    # a scored checkpoint's lineage goes through the checkpoint; a reference model's stops at its model
    scores = audit(home, "benchmark_scores", "tessy")
    assert scores.ok and set(scores.artifacts) == CHECKPOINT_LINEAGE | {"benchmark_scores[tessy]"}
    teacher = audit(home, "benchmark_scores", "teacher")
    assert teacher.ok and set(teacher.artifacts) == {"benchmark_scores[teacher]", "benchmark", "teacher_model"}
    assert [i.name for i in teacher.artifacts["benchmark_scores[teacher]"].inputs] == ["benchmark", "model"]
    # every artifact of the micro graph passes its own audit
    for manifest in sorted(home.glob("*/*/manifest.json")):
        assert audit(home, manifest.parent.parent.name, manifest.parent.name).ok, manifest


def test_the_command_prints_the_tree_and_json(micro_graph):
    run = _cli("student_checkpoint", "tessy", "--home", micro_graph.home)
    assert run.returncode == EXIT_OK, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("student_checkpoint[tessy]  ok  digest ")
    assert any(line.startswith("├─ sft_corpus[tessy]  ok  digest ") for line in lines)
    assert any("verdict drift_report.json: passed" in line for line in lines)
    assert any("verdict checks.json: passed" in line for line in lines)
    assert any(line.endswith("student_model  (above)") for line in lines)  # met again: named, not repeated
    assert lines[-1] == "lineage audit of student_checkpoint[tessy]: passed (10 artifacts)"
    as_json = json.loads(_cli("student_checkpoint", "tessy", "--home", micro_graph.home, "--json").stdout)
    assert as_json["ok"] and as_json["exit_code"] == 0 and set(as_json["artifacts"]) == CHECKPOINT_LINEAGE
    corpus = as_json["artifacts"]["sft_corpus[tessy]"]
    assert corpus["settings"]["filters"] and corpus["code_version"] and corpus["recomputed_digest"] == corpus["digest"]
    with_settings = _cli("sft_corpus", "tessy", "--home", micro_graph.home, "--settings").stdout
    assert "setting max_student_tokens = " in with_settings


def test_a_file_changed_after_materialization_is_named_and_the_command_exits_1(micro_graph, tmp_path):
    home = _copy(micro_graph.home, tmp_path)
    edited = _edit_traces(home / "cooperative_traces" / "tessy")
    run = _cli("student_checkpoint", "tessy", "--home", home)
    assert run.returncode == EXIT_PROBLEMS
    assert f"CHANGED  {edited}  (cooperative_traces[tessy]: modified after" in run.stdout
    assert run.stdout.splitlines()[-1] == "lineage audit of student_checkpoint[tessy]: FAILED (10 artifacts)"
    report = audit(home, "student_checkpoint", "tessy")
    assert [(p.kind, p.artifact, p.path) for p in report.problems] == [
        ("changed", "cooperative_traces[tessy]", str(edited))]
    # what does not read the traces still passes
    assert audit(home, "boundary_model").ok and audit(home, "student_checkpoint", "teacher_only").ok


def test_a_rebuilt_input_makes_what_was_made_from_it_stale(micro_graph, tmp_path):
    """The traces rebuilt after the corpus (a consistent new manifest, as a rematerialization writes): nothing
    changed behind a manifest's back, but the corpus was made from the old traces."""
    home = _copy(micro_graph.home, tmp_path)
    folder = home / "cooperative_traces" / "tessy"
    _edit_traces(folder)
    old = read_manifest(folder)
    new = write_manifest(folder, inputs=old["inputs"], settings=old["settings"], metrics=old["metrics"],
                         code_version=old["code_version"])
    report = audit(home, "student_checkpoint", "tessy")
    assert [(p.kind, p.artifact, p.path) for p in report.problems] == [("stale", "sft_corpus[tessy]", str(folder))]
    assert f"{old['digest'][:12]}, which is now {new['digest'][:12]}" in report.problems[0].detail
    assert report.exit_code == EXIT_PROBLEMS


def test_added_and_removed_files_are_named_and_an_older_manifest_names_its_folder(micro_graph, tmp_path):
    home = _copy(micro_graph.home, tmp_path)
    folder = home / "sft_corpus" / "tessy"
    (folder / "notes.txt").write_text("added by hand")
    (folder / "drift_metrics.parquet").unlink()
    problems = audit(home, "sft_corpus", "tessy").problems
    assert {(p.kind, Path(p.path).name, p.detail.split()[0]) for p in problems} == {
        ("changed", "notes.txt", "added"), ("changed", "drift_metrics.parquet", "removed")}
    manifest = read_manifest(folder)
    del manifest["files"]  # as written before per-file digests
    (folder / "manifest.json").write_text(json.dumps(manifest))
    [problem] = audit(home, "sft_corpus", "tessy").problems
    assert problem.kind == "changed" and problem.path == str(folder) and "predates per-file digests" in problem.detail


def test_a_failed_verdict_and_a_missing_input_fail_the_audit(micro_graph, tmp_path):
    home = _copy(micro_graph.home, tmp_path)
    report_path = home / "sft_corpus" / "tessy" / "drift_report.json"
    verdict = json.loads(report_path.read_text())
    verdict["success"] = False
    verdict["outcomes"][0]["success"] = False
    report_path.write_text(json.dumps(verdict))
    shutil.rmtree(home / "student_responses")
    (home / "boundary_dataset" / "all" / "checks.json").write_text("not JSON")
    problems = {(p.kind, p.artifact, Path(p.path).name) for p in audit(home, "student_checkpoint", "tessy").problems}
    assert problems == {("verdict_failed", "sft_corpus[tessy]", "drift_report.json"),
                        ("changed", "sft_corpus[tessy]", "drift_report.json"),  # its bytes changed too
                        ("missing", "sft_corpus[tessy]", "all"),  # the student's own responses are gone
                        ("unreadable", "boundary_dataset", "checks.json"),
                        ("changed", "boundary_dataset", "checks.json")}


def test_usage_errors_exit_2_and_name_what_is_missing(micro_graph, capsys):
    home = str(micro_graph.home)
    assert main(["no_such_asset", "--home", home]) == EXIT_USAGE
    assert f"no artifact of asset 'no_such_asset' in {home}" in capsys.readouterr().err
    assert main(["sft_corpus", "--home", home]) == EXIT_USAGE
    assert "sft_corpus is partitioned: name a partition (teacher_answer, teacher_only" in capsys.readouterr().err
    assert main(["student_checkpoint", "teacher_think", "--home", home]) == EXIT_USAGE  # an ablation: no training
    assert f"{home}/student_checkpoint/teacher_think/manifest.json is missing" in capsys.readouterr().err
    assert main(["--home", home]) == EXIT_USAGE
    assert main(["--home", home, "--query", "no_such_query"]) == EXIT_USAGE
    assert "the named queries: teacher_token_share" in capsys.readouterr().err
    assert main(["prompts", "--home", home, "--query", "rows_by_boundary_model"]) == EXIT_USAGE
    assert "no boundary_model in the lineage of prompts" in capsys.readouterr().err


def test_inputs_read_where_they_are_are_audited_at_their_location(micro_graph, tmp_path):
    """A team's model folders and prompts file: the audit recomputes their digests where they are."""
    team = tmp_path / "team"
    for role in ("teacher", "student"):
        shutil.copytree(micro_graph.home / f"{role}_model" / "all", team / role,
                        ignore=shutil.ignore_patterns("manifest.json"))
    prompts = team / "prompts.jsonl"
    rows = pq.read_table(micro_graph.home / "prompts" / "all" / "prompts.parquet").to_pylist()
    prompts.write_text("".join(json.dumps({"id": r["problem_id"], "prompt": r["prompt"]}) + "\n" for r in rows))
    settings = tmp_path / "team.json"
    settings.write_text(json.dumps({"inputs": {"source": "files", "prompts": {"path": str(prompts)},
                                               "teacher_model": {"path": str(team / "teacher")},
                                               "student_model": {"path": str(team / "student")}}}))
    home = tmp_path / "home"
    materialize(all_assets, selection=["teacher_model", "student_model", "prompts"],
                resources=micro_resources(home, settings), instance=DagsterInstance.ephemeral())
    report = audit(home, "prompts")
    assert report.ok, report.problems
    assert {i.name: i.artifact for i in report.artifacts["prompts"].inputs} == {
        "teacher": "teacher_model", "student": "student_model"}  # reached through their locations
    assert [(s.name, s.path) for s in report.artifacts["prompts"].sources] == [("prompts file", str(prompts))]
    assert [s.path for s in report.artifacts["teacher_model"].sources] == [str(team / "teacher")]

    config = team / "teacher" / "config.json"
    config.write_text(config.read_text().replace("{", '{"edited": true, ', 1))
    with prompts.open("a") as f:
        f.write(json.dumps({"id": "extra", "prompt": "one more"}) + "\n")
    problems = {(p.kind, p.artifact, p.path) for p in audit(home, "prompts").problems}
    assert problems == {("changed", "teacher_model", str(team / "teacher")), ("changed", "prompts", str(prompts))}


# ---- the named queries ----------------------------------------------------------------------------------------

def _table(home: Path, asset: str, arm: str, name: str) -> list[dict]:
    return pq.read_table(home / asset / arm / name).to_pylist()


def test_teacher_token_share_follows_the_checkpoint_to_its_corpus_and_spans(micro_graph):
    home = micro_graph.home
    result = run_query(home, "teacher_token_share")
    by_arm = {row["checkpoint"]: row for row in result.as_dicts()}
    assert set(by_arm) == {"tessy", "teacher_only"}  # the arms that trained a student
    for arm, row in by_arm.items():
        records = {r["prompt_id"] for r in _table(home, "sft_corpus", arm, "corpus.parquet")}
        traces = [t for t in _table(home, "cooperative_traces", arm, "traces.parquet") if t["prompt_id"] in records]
        assert len(traces) == len(records) == row["records"] > 0  # one trace per record
        teacher, total = sum(t["n_tokens_teacher"] for t in traces), sum(t["n_tokens_total"] for t in traces)
        chars = Counter()
        for t in traces:
            for span in t["spans"]:
                chars[span["author"]] += len(span["text"])
        assert (row["teacher_tokens"], row["thinking_tokens"]) == (teacher, total)
        assert row["teacher_token_share"] == round(teacher / total, 4)
        assert row["teacher_char_share"] == round(chars["teacher"] / sum(chars.values()), 4)
        assert row["answers_by_teacher"] == sum(t["answer_author"] == "teacher" for t in traces)
    assert by_arm["teacher_only"]["teacher_token_share"] == 1.0
    assert 0 < by_arm["tessy"]["teacher_token_share"] < 1
    # from one checkpoint: its own row only
    assert run_query(home, "teacher_token_share", "student_checkpoint", "tessy").as_dicts() == [by_arm["tessy"]]


def test_traces_by_switch_count_and_dropped_by_reason_count_the_files(micro_graph):
    home = micro_graph.home
    switches = Counter((t["arm"], t["n_switches"]) for arm in ARMS_WITH_TRACES + BASELINES
                       for t in _table(home, "cooperative_traces", arm, "traces.parquet"))
    rows = run_query(home, "traces_by_switch_count").as_dicts()
    assert {(r["arm"], r["switches"]): r["traces"] for r in rows} == switches
    assert any(r["arm"] == "tessy" and r["switches"] > 0 for r in rows)
    scoped = run_query(home, "traces_by_switch_count", "student_checkpoint", "tessy").as_dicts()
    assert {(r["arm"], r["switches"]): r["traces"] for r in scoped} == {
        key: n for key, n in switches.items() if key[0] == "tessy"}

    dropped = Counter((arm, d["reason"]) for arm in ARMS_WITH_TRACES
                      for d in _table(home, "sft_corpus", arm, "dropped.parquet"))
    assert dropped  # the micro corpora drop some traces
    rows = run_query(home, "dropped_by_reason").as_dicts()
    assert {(r["arm"], r["reason"]): r["rows"] for r in rows} == dropped
    scoped = run_query(home, "dropped_by_reason", "sft_corpus", "teacher_only").as_dicts()
    assert {(r["arm"], r["reason"]): r["rows"] for r in scoped} == {
        key: n for key, n in dropped.items() if key[0] == "teacher_only"}


def test_rows_by_boundary_model_spans_every_arm(micro_graph):
    home = micro_graph.home
    digest = read_manifest(home / "boundary_model" / "all")["digest"]
    expected = {}
    for arm in ARMS_WITH_TRACES:
        traces = [t for t in _table(home, "cooperative_traces", arm, "traces.parquet")
                  if t["boundary_digest"] == digest]
        if traces:
            records = {r["prompt_id"] for r in _table(home, "sft_corpus", arm, "corpus.parquet")}
            expected[arm] = (len(traces), sum(t["n_switches"] for t in traces),
                             sum(t["prompt_id"] in records for t in traces))
    assert set(expected) == {"tessy", "teacher_answer"}  # the arms whose thinking is cooperative
    for start in (("boundary_model", None), ("student_checkpoint", "tessy")):
        rows = run_query(home, "rows_by_boundary_model", *start).as_dicts()
        assert {r["arm"]: (r["traces"], r["switches"], r["corpus_records"]) for r in rows} == expected
        assert {r["boundary_digest"] for r in rows} == {digest}
    every_model = run_query(home, "rows_by_boundary_model").rows  # no artifact, no digest: every boundary model
    assert run_query(home, "rows_by_boundary_model", digest=digest[:8]).rows == every_model
    assert run_query(home, "rows_by_boundary_model", digest="0" * 64).rows == []


def test_the_query_command_lists_and_prints(micro_graph):
    listed = _cli("--query", "list", "--home", micro_graph.home)
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == list(QUERIES)
    table = _cli("student_checkpoint", "tessy", "--home", micro_graph.home, "--query", "teacher_token_share")
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == ["checkpoint", "records", "teacher_tokens", "thinking_tokens",
                                                    "teacher_token_share", "teacher_char_share", "answers_by_teacher"]
    assert table.stdout.splitlines()[2].split()[0] == "tessy" and table.stdout.endswith("(1 row)\n")
    rows = json.loads(_cli("--query", "dropped_by_reason", "--home", micro_graph.home, "--json").stdout)
    assert rows == run_query(micro_graph.home, "dropped_by_reason").as_dicts()


# ---- the asset check ------------------------------------------------------------------------------------------

def _checks(result) -> dict:
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def test_the_lineage_audit_check_runs_with_the_asset_and_fails_after_tampering(micro_graph, tmp_path):
    # the micro graph's own home: every artifact is reused, nothing is written, the check runs after
    for asset, partition in (("student_checkpoint", "tessy"), ("benchmark_scores", "teacher")):
        result = materialize([*all_assets, *all_checks], selection=[asset], partition_key=partition,
                             resources=micro_resources(micro_graph.home), instance=DagsterInstance.ephemeral())
        evaluation = _checks(result)[(asset, "lineage_audit")]
        assert evaluation.passed and evaluation.metadata["problems"].value == 0
        assert evaluation.metadata["artifacts_audited"].value == (10 if asset == "student_checkpoint" else 3)
    # a copy with an edited traces file: the checkpoint is trained again in the copy, then the check fails
    home = _copy(micro_graph.home, tmp_path)
    edited = _edit_traces(home / "cooperative_traces" / "tessy")
    result = materialize([*all_assets, *all_checks], selection=["student_checkpoint"], partition_key="tessy",
                         resources=micro_resources(home), instance=DagsterInstance.ephemeral())
    assert result.success  # a failed check of severity ERROR is recorded; the run itself succeeds
    evaluation = _checks(result)[("student_checkpoint", "lineage_audit")]
    assert not evaluation.passed and evaluation.severity.value == "ERROR"
    assert evaluation.metadata["changed"].value == str(edited)
    assert str(edited) in evaluation.metadata["report"].value


def test_the_check_is_in_the_code_location_and_the_engine_side_imports_no_dagster():
    from tessy_dagster.definitions import defs

    keys = {(k.asset_key.to_user_string(), k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    assert {("student_checkpoint", "lineage_audit"), ("benchmark_scores", "lineage_audit")} <= keys
    code = "import sys, tessy_dagster.audit, tessy_dagster.audit_queries; print('dagster' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False"]
