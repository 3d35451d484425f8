"""The arm comparison: the engine on hand-made scores, the plots, and the asset over the micro graph."""

import base64
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import BASELINES
from tessy_dagster import compare, plots, schemas
from tessy_dagster.storage import write_manifest, write_table


def scores_folder(folder, outcomes: dict, *, suite="toy", pass_at_k=(1,), benchmark="b1", difficulty=None):
    """A benchmark_scores artifact: `outcomes` maps problem id -> [passed of sample 0, 1, ...]."""
    folder.mkdir(parents=True)
    rows = [{"problem_id": pid, "suite": suite, "kind": "toy", "difficulty": (difficulty or {}).get(pid, ""),
             "release_date": "", "sample": s, "thinking": "t", "answer": "a", "closed": True,
             "thinking_tokens": 10 * (s + 1), "finish_reason": "length" if s == 0 else "stop", "truncated": s == 0,
             "status": "passed" if ok else "failed", "detail": "", "n_passed": int(ok), "n_tests": 1, "passed": ok,
             "teacher_marker_rate": 0.5, "student_marker_rate": 0.25}
            for pid, samples in outcomes.items() for s, ok in enumerate(samples)]
    write_table(pa.Table.from_pylist(rows, schema=schemas.SCORES), folder / "scores.parquet", schemas.SCORES)
    write_manifest(folder, inputs={"benchmark": {"dir": "x", "digest": benchmark}},
                   settings={"pass_at_k": list(pass_at_k)}, metrics={}, code_version="test")
    return folder


def is_png(data: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG" and image.width > 0 and image.height > 0
    return image.size


# --- statistics on known numbers ----------------------------------------------------------------------------

def test_bootstrap_interval_on_known_numbers():
    # two problems, one passed: the resampled means are 0, 0.5, 1 with chances 1/4, 1/2, 1/4
    assert compare.bootstrap_mean_ci([0.0, 1.0]) == (0.0, 1.0)
    assert compare.bootstrap_mean_ci([0.25] * 7) == (0.25, 0.25)
    assert compare.bootstrap_mean_ci([1.0]) == (None, None)
    # 30 of 100 passed: close to the normal interval 0.3 +- 1.96 * sqrt(0.21 / 100)
    low, high = compare.bootstrap_mean_ci([1.0] * 30 + [0.0] * 70)
    half = 1.96 * np.sqrt(0.21 / 100)
    assert low == pytest.approx(0.3 - half, abs=0.012) and high == pytest.approx(0.3 + half, abs=0.012)
    assert compare.bootstrap_mean_ci([1.0] * 30 + [0.0] * 70) == (low, high)  # seeded


def test_score_row_spread_over_samples_and_pass_at_k(tmp_path):
    # sample 0: both pass, sample 1: p1 passes, sample 2: neither -> per-sample pass@1 1, 0.5, 0
    folder = scores_folder(tmp_path / "m", {"p1": [True, True, False], "p2": [True, False, False]}, pass_at_k=(1, 2))
    [row] = compare.model_rows("tessy", compare.read_scores(folder), [1, 2])
    assert row["pass@1"] == pytest.approx(0.5)  # (2/3 + 1/3) / 2
    assert row["pass@1_sample_std"] == pytest.approx(0.5)  # std of 1, 0.5, 0
    assert row["pass@2"] == pytest.approx((1.0 + 2 / 3) / 2)  # p1: 1 - C(1,2)/C(3,2); p2: 1 - C(2,2)/C(3,2)
    assert (row["pass@1_ci_low"], row["pass@1_ci_high"]) == compare.bootstrap_mean_ci([2 / 3, 1 / 3])
    assert row["mean_thinking_tokens"] == pytest.approx(20.0) and row["truncation_rate"] == pytest.approx(1 / 3)
    assert row["teacher_marker_rate"] == 0.5 and row["n_problems"] == 2 and row["n_samples"] == 6
    one_sample = scores_folder(tmp_path / "one", {"p1": [True], "p2": [False]})
    [row] = compare.model_rows("base", compare.read_scores(one_sample), [1])
    assert row["pass@1_sample_std"] is None and row["role"] == "reference"


def test_buckets_are_scored_apart(tmp_path):
    folder = scores_folder(tmp_path / "m", {"a": [True], "b": [False], "c": [True]},
                           difficulty={"a": "1-step", "b": "1-step", "c": "2-step"})
    rows = compare.model_rows("tessy", compare.read_scores(folder), [1])
    by = {(r["bucket_kind"], r["bucket"]): r["pass@1"] for r in rows}
    assert by == {("suite", ""): pytest.approx(2 / 3), ("difficulty", "1-step"): 0.5, ("difficulty", "2-step"): 1.0}


def test_paired_differences_and_the_verdict(tmp_path):
    five = [f"p{i}" for i in range(5)]
    dirs = {"tessy": scores_folder(tmp_path / "tessy", {p: [True, True] for p in five}),
            "teacher_only": scores_folder(tmp_path / "teacher_only", {p: [False, False] for p in five}),
            "base": scores_folder(tmp_path / "base", {"p0": [True, False], "p1": [False, False], "p2": [True, True],
                                                      "p3": [True, True], "p4": [True, True], "p5": [True, True]})}
    c = compare.compare(dirs, missing=["teacher", "teacher_think", "teacher_answer"])
    only, base = c.verdicts
    assert (only["arm"], only["other"], only["diff"], only["ci_low"], only["ci_high"]) == \
        ("tessy", "teacher_only", 1.0, 1.0, 1.0)
    assert only["significant"] and only["sentence"] == \
        "tessy beats teacher_only by +1.000 pass@1 (95% CI +1.000..+1.000, 5 problems): significant"
    # base: per-problem rates 0.5, 0, 1, 1, 1 on the five shared problems (p5 only base answered)
    diffs = [0.5, 1.0, 0.0, 0.0, 0.0]
    assert base["diff"] == pytest.approx(np.mean(diffs)) and base["n_paired"] == 5 and base["n_unpaired"] == 1
    assert (base["ci_low"], base["ci_high"]) == compare.bootstrap_mean_ci(diffs)
    assert base["sentence"].startswith("tessy beats base by +0.300 pass@1 (95% CI ")
    assert base["sentence"].endswith("not significant; 1 problem answered by only one of them left out")
    assert c.missing == ["teacher", "teacher_think", "teacher_answer"]
    md = compare.markdown(c)
    assert "Not scored (no benchmark_scores artifact): teacher, teacher_think, teacher_answer." in md
    assert only["sentence"] in md and all(f"| {m} |" in md for m in dirs)


def test_sentences_say_ties_trails_and_too_few():
    d = {"diff": -0.05, "ci_low": -0.12, "ci_high": 0.02, "n_paired": 40, "n_unpaired": 0, "significant": False}
    assert compare.verdict_sentence("tessy", "base", d) == \
        "tessy trails base by \u22120.050 pass@1 (95% CI \u22120.120..+0.020, 40 problems): not significant"
    d = {"diff": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n_paired": 3, "n_unpaired": 0, "significant": False}
    assert compare.verdict_sentence("tessy", "base", d) == \
        "tessy ties base, difference +0.000 pass@1 (95% CI +0.000..+0.000, 3 problems): not significant"
    d = {"diff": 1.0, "ci_low": None, "ci_high": None, "n_paired": 1, "n_unpaired": 0, "significant": None}
    assert compare.verdict_sentence("tessy", "base", d) == \
        "tessy beats base by +1.000 pass@1 (1 problem: too few to estimate a spread): cannot say"


def test_a_missing_comparator_gives_no_verdict_and_other_benchmarks_warn(tmp_path):
    dirs = {"tessy": scores_folder(tmp_path / "tessy", {"p": [True], "q": [False]}),
            "base": scores_folder(tmp_path / "base", {"p": [True], "q": [True]}, benchmark="b2")}
    c = compare.compare(dirs, missing=["teacher_only"])
    only = next(v for v in c.verdicts if v["other"] == "teacher_only")
    assert only["diff"] is None and only["sentence"] == "teacher_only not scored on toy: no verdict"
    assert c.warnings and "different benchmark versions" in c.warnings[0]
    with pytest.raises(ValueError, match="no model has benchmark scores"):
        compare.compare({}, missing=["tessy"])


def test_written_files(tmp_path):
    dirs = {"tessy": scores_folder(tmp_path / "tessy", {"p": [True, False], "q": [False, False]}, pass_at_k=(1, 2))}
    out = tmp_path / "out"
    out.mkdir()
    metrics = compare.write_comparison(compare.compare(dirs, missing=[]), out)
    table = pq.read_table(out / compare.COMPARISON_FILE).to_pylist()
    assert [(r["model"], r["suite"], r["pass@1"], r["pass@2"]) for r in table] == [("tessy", "toy", 0.25, 0.5)]
    assert metrics["toy.tessy.pass@1"] == 0.25 and metrics["models_scored"] == 1
    assert "| tessy | 0.250 |" in (out / compare.MARKDOWN_FILE).read_text()
    assert pq.read_table(out / compare.CORPUS_STYLE_FILE).num_rows == 0


# --- plots --------------------------------------------------------------------------------------------------

def test_every_plot_is_a_png_even_without_data():
    row = {"model": "tessy", "suite": "toy", "bucket_kind": "suite", "pass@1": 0.4, "pass@1_ci_low": 0.2,
           "pass@1_ci_high": 0.6}
    is_png(plots.scores_by_suite([row, {**row, "model": "base", "pass@1_ci_low": None, "pass@1_ci_high": None}]))
    is_png(plots.scores_by_suite([]))
    drift = [{"teacher_token_share": 0.3, "style_rate": 0.1, "nll_style": 2.0, "similarity": None}]
    calibration = {"columns": {"nll_style": {"mean": 1.5, "q05": 1.0, "q95": 2.5}}}
    is_png(plots.drift_by_arm({"tessy": drift, "teacher_only": []}, calibration))
    is_png(plots.drift_by_arm({}))
    is_png(plots.teacher_share_histogram([0.1, 0.5, 0.5, 1.0], "tessy"))
    is_png(plots.teacher_share_histogram([], "tessy"))
    held = {"true_style": 5, "missed_style": 2, "false_style": 1, "true_capability": 30, "style_f1": 0.77,
            "switch_exact": 0.5, "switch_within_one_word": 0.75, "switch_cases": 4}
    is_png(plots.boundary_eval({"B_T": {"role": "teacher", "held_out": held, "held_out_mixed": held},
                                "B_S": {"role": "student", "held_out": held, "held_out_mixed": None}}))
    trace = {"n_tokens_total": 50, "n_tokens_student": 20, "n_tokens_teacher": 30, "n_switches": 3}
    is_png(plots.trace_lengths([trace, {**trace, "n_switches": 0}], "tessy"))
    is_png(plots.trace_lengths([], "tessy"))


def test_loading_the_code_location_does_not_import_matplotlib():
    code = "import sys, tessy_dagster.definitions; print('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.split() == ["False"]


# --- the asset over the micro graph -------------------------------------------------------------------------

def _metadata(result, asset):
    [event] = result.asset_materializations_for_node(asset)
    return {k: v.value for k, v in event.metadata.items()}


def _pngs(markdown: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r"!\[[^]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)",
                                                    markdown)]


def _per_problem_rates(path, suite):
    rows = [r for r in pq.read_table(path).to_pylist() if r["suite"] == suite]
    rates = {}
    for r in rows:
        rates.setdefault(r["problem_id"], []).append(bool(r["passed"]))
    return {p: sum(v) / len(v) for p, v in rates.items()}


@pytest.fixture(scope="module")
def compared(micro_graph, tmp_path_factory):
    """arm_comparison over a copy of the micro graph's artifacts, in the graph's instance."""
    from dagster import materialize

    from tessy_dagster.definitions import all_assets

    from conftest import micro_resources

    home = tmp_path_factory.mktemp("compare") / "home"
    shutil.copytree(micro_graph.home, home)
    run = lambda: materialize(all_assets, selection=["arm_comparison"],  # noqa: E731
                              resources=micro_resources(home), instance=micro_graph.instance)
    return home, run, run()


def test_the_table_matches_every_models_summary(compared):
    from conftest import SCORED_ARMS

    home, _, result = compared
    assert result.success
    folder = home / "arm_comparison" / "all"
    rows = pq.read_table(folder / compare.COMPARISON_FILE).to_pylist()
    metadata = _metadata(result, "arm_comparison")
    for model in SCORED_ARMS:
        summary = json.loads((home / "benchmark_scores" / model / "summary.json").read_text())
        for suite, scores in summary.items():
            [row] = [r for r in rows if (r["model"], r["suite"], r["bucket_kind"]) == (model, suite, "suite")]
            assert row["pass@1"] == pytest.approx(scores["pass@1"])
            assert row["mean_thinking_tokens"] == pytest.approx(scores["mean_thinking_tokens"])
            assert row["truncation_rate"] == pytest.approx(scores["truncation_rate"])
            assert row["teacher_marker_rate"] == pytest.approx(scores["teacher_marker_rate"])
            assert row["pass@1_ci_low"] <= row["pass@1"] <= row["pass@1_ci_high"]
            assert metadata[f"{suite}.{model}.pass@1"] == pytest.approx(scores["pass@1"])
            for bucket, bucket_scores in scores["by_difficulty"].items():
                [b] = [r for r in rows if (r["model"], r["suite"], r["bucket"]) == (model, suite, bucket)]
                assert b["pass@1"] == pytest.approx(bucket_scores["pass@1"])
        assert f"| {model} |" in metadata["comparison"]
    # the micro graph scores the references and the two main arms; the ablations are missing, and said so
    unscored = ("teacher_think", "teacher_answer") + BASELINES
    assert metadata["missing"] == ", ".join(unscored) and metadata["models_missing"] == len(unscored)
    assert f"Not scored (no benchmark_scores artifact): {', '.join(unscored)}." in metadata["comparison"]


def test_the_verdict_is_the_paired_difference_of_the_scores(compared):
    home, _, result = compared
    metadata = _metadata(result, "arm_comparison")
    tessy = _per_problem_rates(home / "benchmark_scores" / "tessy" / "scores.parquet", "toy")
    for other in ("teacher_only", "base"):
        rates = _per_problem_rates(home / "benchmark_scores" / other / "scores.parquet", "toy")
        assert set(rates) == set(tessy)
        diff = float(np.mean([tessy[p] - rates[p] for p in sorted(tessy)]))
        key = f"toy.tessy_minus_{other}"
        assert metadata[f"{key}.diff"] == pytest.approx(diff)
        assert metadata[f"{key}.ci_low"] <= diff <= metadata[f"{key}.ci_high"]
        verb = "beats" if diff > 0 else "trails" if diff < 0 else "ties"
        assert f"- **toy**: tessy {verb} {other}" in metadata["comparison"]


def test_the_plots_decode(compared, micro_graph):
    home, _, result = compared
    metadata = _metadata(result, "arm_comparison")
    for title in ("scores per suite", "style drift per arm"):
        [png] = _pngs(metadata[title])
        is_png(png)
    assert (home / "arm_comparison" / "all" / "scores.png").read_bytes() == _pngs(metadata["scores per suite"])[0]
    results = micro_graph.results
    for run, asset, titles in (("inputs", "boundary_model", ["confusion and switch accuracy"]),
                               ("tessy", "sft_corpus", ["teacher share histogram", "style drift"]),
                               ("tessy", "cooperative_traces", ["trace length and switches"])):
        found = _metadata(results[run], asset)
        for title in titles:
            [png] = _pngs(found[title])
            is_png(png)


def test_an_unchanged_comparison_is_reused_and_a_missing_partition_is_reported(compared):
    home, run, _ = compared
    assert _metadata(run(), "arm_comparison")["reused"] is True
    shutil.rmtree(home / "benchmark_scores" / "teacher_only")
    metadata = _metadata(run(), "arm_comparison")
    assert metadata["reused"] is False and \
        metadata["missing"] == ", ".join(("teacher_only", "teacher_think", "teacher_answer") + BASELINES)
    assert "toy.tessy_minus_teacher_only.diff" not in metadata and "toy.tessy_minus_base.diff" in metadata
    assert "- **toy**: teacher_only not scored on toy: no verdict." in metadata["comparison"]
