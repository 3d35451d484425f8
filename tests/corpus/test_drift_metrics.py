"""Model-based drift metrics on the micro world, and the drift gate blocking a teacher-written corpus."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tessy_dagster.corpus.drift_metrics import (
    METRIC_COLUMNS,
    NLL_GROUPS,
    _windows,
    calibrate,
    char_authors,
    compute_drift_metrics,
    summarize,
)


def test_char_authors_fill_gaps_with_the_next_writer():
    thinking = "ab cd"
    spans = [{"author": "student", "start": 0, "end": 2}, {"author": "teacher", "start": 3, "end": 5}]
    assert char_authors(thinking, spans) == ["student", "student", "teacher", "teacher", "teacher"]


@pytest.mark.parametrize("n,max_tokens,context", [(0, 8, 2), (5, 8, 2), (8, 8, 2), (9, 8, 2), (40, 8, 3), (40, 8, 20)])
def test_windows_predict_every_position_once_after_their_context(n, max_tokens, context):
    seen = []
    for start, first, end in _windows(n, max_tokens, context):
        assert end - start <= max_tokens and start <= first <= end
        assert first - start <= max(0, min(context, max_tokens - 1))
        seen += range(first, end)
    assert seen == list(range(n))


@pytest.fixture(scope="module")
def corpora(micro_world, micro, tmp_path_factory):
    """The student's own traces (two samples) and the teacher's (teacher_only: real-format teacher-written
    traces), with their drift metrics and the calibration on the student's second sample."""
    from tessy_dagster.cooperate.run import write_traces
    from tessy_dagster.corpus.drift_metrics import DriftModels, StudentSimilarity
    from tessy_dagster.storage import read_table

    root = tmp_path_factory.mktemp("drift_corpora")
    rows = {}
    for name, arm, seed in (("reference", "student_only", 0), ("calibration", "student_only", 1000),
                            ("teacher", "teacher_only", 0)):
        out = root / name
        out.mkdir()
        write_traces(arm=arm, teacher_dir=micro_world["teacher"], student_dir=micro_world["student"],
                     boundary_dir=None, prompts_path=micro_world["prompts"] / "prompts.parquet", digests={},
                     settings=micro.cooperate.model_copy(update={"seed": seed}),
                     context_tokens=micro.boundary.context_tokens, out_dir=out, work_dir=root / f"{name}.work",
                     progress=lambda m: None)
        rows[name] = [r for r in read_table(out / "traces.parquet").to_pylist() if r["thinking"].strip()]
    models = DriftModels(micro_world["student"], micro_world["boundary"], context_tokens=micro.boundary.context_tokens)
    similarity = StudentSimilarity(models.local.tokenizer, rows["reference"])
    messages = []
    metrics = {name: compute_drift_metrics(r, models=models, similarity=similarity, batch_size=4,
                                           classifier_max_tokens=16, progress=messages.append)
               for name, r in rows.items()}
    return {"rows": rows, "metrics": metrics, "calibration": calibrate(metrics["calibration"]),
            "models": models, "messages": messages, "root": root}


def test_every_trace_gets_every_metric_and_the_groups_add_up(corpora):
    assert corpora["messages"], "progress is reported"
    for name, metrics in corpora["metrics"].items():
        assert len(metrics) == len(corpora["rows"][name]) > 0
        for m, row in zip(metrics, corpora["rows"][name]):
            assert set(METRIC_COLUMNS) <= set(m)
            n = {g: m[f"n_{g}_tokens"] for g, _, _ in NLL_GROUPS}
            assert n["thinking"] > 0
            assert n["student_spans"] + n["teacher_spans"] == n["thinking"]
            assert n["style"] + n["capability"] == n["thinking"]
            assert n["student_style"] + n["student_capability"] == n["student_spans"]
            assert n["teacher_style"] + n["teacher_capability"] == n["teacher_spans"]
            # the overall mean is the token-weighted mean of the parts; an empty part has no mean
            parts = [(m[f"nll_{g}"], n[g]) for g in ("style", "capability") if n[g]]
            assert m["nll_thinking"] == pytest.approx(sum(v * k for v, k in parts) / n["thinking"], rel=1e-6)
            for g in n:
                assert (m[f"nll_{g}"] is None) == (n[g] == 0)
                assert m[f"nll_{g}"] is None or m[f"nll_{g}"] >= 0
            assert m["style_rate"] == pytest.approx(n["style"] / n["thinking"])
            assert m["teacher_token_share"] == pytest.approx(row["n_tokens_teacher"] / row["n_tokens_total"])
            assert m["n_answer_tokens"] > 0 and m["nll_answer"] >= 0
            assert 0.0 <= m["similarity"] <= 1.0
    for m in corpora["metrics"]["teacher"]:
        assert m["n_student_spans_tokens"] == 0 and m["nll_student_spans"] is None
        assert m["style_rate_student"] is None and m["teacher_token_share"] == 1.0
    for m in corpora["metrics"]["reference"]:
        assert m["n_teacher_spans_tokens"] == 0 and m["style_rate_teacher"] is None
        assert m["teacher_token_share"] == 0.0


def test_identical_text_has_similarity_one(corpora):
    assert [m["similarity"] for m in corpora["metrics"]["reference"]] == pytest.approx(
        [1.0] * len(corpora["rows"]["reference"]))
    from tessy_dagster.corpus.drift_metrics import tfidf_similarity

    tokenizer = corpora["models"].local.tokenizer
    other = [{**corpora["rows"]["reference"][0], "prompt_id": "elsewhere"}]
    assert tfidf_similarity(tokenizer, corpora["rows"]["reference"], other) == [None]  # no reference for it


def test_the_student_finds_its_own_traces_likelier_than_the_teachers(corpora):
    own = summarize(corpora["metrics"]["calibration"])["pooled_nll_thinking"]
    teacher = summarize(corpora["metrics"]["teacher"])["pooled_nll_thinking"]
    assert own < teacher


def test_calibration_summarises_the_students_own_metrics(corpora):
    calibration = corpora["calibration"]
    metrics = corpora["metrics"]["calibration"]
    assert calibration["n_traces"] == len(metrics)
    style = calibration["columns"]["nll_thinking"]
    values = [m["nll_thinking"] for m in metrics]
    assert style["n"] == len(values) and style["mean"] == pytest.approx(sum(values) / len(values))
    assert style["q05"] <= style["q50"] <= style["q95"]
    sim = calibration["columns"]["similarity"]
    assert 0 < sim["mean"] <= 1  # self-similarity of two samples
    import json

    assert json.loads(json.dumps(calibration)) == calibration
    with pytest.raises(ValueError, match="no student traces"):
        calibrate([])


def test_the_gate_blocks_the_teachers_traces_and_passes_the_students_own(corpora):
    """Real-format traces, no lexicon: the teacher's corpus fails the calibrated model-based expectations
    (the token-share limit is off, so it is not what blocks it); the student's own sample passes."""
    from tessy_dagster.corpus.drift_check import DriftThresholds, validate_style_drift, verdict_json
    from tessy_dagster.settings import DriftSettings

    thresholds = DriftThresholds.for_arm(DriftSettings(), "tessy", markers=False, max_mean_teacher_token_share=None)
    calibration = corpora["calibration"]
    own = validate_style_drift(pd.DataFrame(corpora["metrics"]["reference"]), thresholds, calibration)
    assert own.success, [o for o in own.failed()]
    teacher = validate_style_drift(pd.DataFrame(corpora["metrics"]["teacher"]), thresholds, calibration)
    assert not teacher.success
    failed = {o.name for o in teacher.failed()}
    assert failed & {"mean_style_nll_excess", "row_style_nll_outliers", "mean_teacher_style_rate"}, failed
    assert failed <= {"mean_style_nll_excess", "row_style_nll_outliers", "mean_teacher_style_rate",
                      "mean_similarity_ratio"}
    verdict = verdict_json(teacher, thresholds)
    assert verdict["calibration"] == calibration and verdict["success"] is False
    for o in verdict["outcomes"]:
        assert o["observed"] is None or not math.isnan(o["observed"])


def test_corpus_drift_in_one_call_from_the_student_responses_layout(corpora, micro_world, micro):
    """`root` holds reference/ and calibration/ traces.parquet, as the student_responses artifact does."""
    from tessy_dagster.corpus.drift_metrics import corpus_drift, ended_normally

    rows = corpora["rows"]["teacher"]
    metrics, calibration = corpus_drift(rows, student_dir=micro_world["student"], boundary_dir=micro_world["boundary"],
                                        student_responses_dir=corpora["root"], context_tokens=micro.boundary.context_tokens,
                                        classifier_max_tokens=16, batch_size=4)
    assert [m["nll_thinking"] for m in metrics] == pytest.approx([m["nll_thinking"] for m in corpora["metrics"]["teacher"]])
    own = [r for r in corpora["rows"]["calibration"] if ended_normally(r)]
    assert calibration["n_traces"] == len(own) > 0
    with pytest.raises(FileNotFoundError, match="student_responses"):
        corpus_drift(rows, student_dir=micro_world["student"], boundary_dir=micro_world["boundary"],
                     student_responses_dir=corpora["root"] / "missing")
