import json

import pytest

from tessy_dagster.settings import load_settings


def test_profiles_load():
    assert load_settings("toy").profile == "toy"
    micro = load_settings("micro")
    assert micro.toyworld.train_seconds < load_settings("toy").toyworld.train_seconds


def test_overrides_file_is_merged(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"cooperate": {"student_chunk_tokens": 7}}))
    s = load_settings("micro", path)
    assert s.cooperate.student_chunk_tokens == 7 and s.cooperate.batch_size == 8


def test_bad_values_name_the_field(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"cooperate": {"student_chunk_tokens": 0}}))
    with pytest.raises(ValueError, match="student_chunk_tokens"):
        load_settings("toy", path)
    path.write_text(json.dumps({"cooperate": {"no_such_setting": 1}}))
    with pytest.raises(ValueError, match="no_such_setting"):
        load_settings("toy", path)
    path.write_text("{not json")
    with pytest.raises(ValueError, match=str(path)):
        load_settings("toy", path)
    with pytest.raises(ValueError, match="unknown settings profile"):
        load_settings("huge")


def test_the_documented_production_boundary_example_is_valid():
    from pathlib import Path

    example = Path(__file__).parent.parent / "examples" / "production_boundary.json"
    s = load_settings("toy", example).boundary
    assert s.annotator == "llm" and s.window_words == 60 and s.base_model.endswith("Qwen3-0.6B-Base")
    assert s.learning_rate == 1e-5 and s.context_tokens == 200


def test_inconsistent_boundary_settings_are_refused(tmp_path):
    path = tmp_path / "o.json"
    for bad, field in (({"annotator": "llm"}, "annotator_model"),
                       ({"min_style_char_share": 0.5, "max_style_char_share": 0.4}, "min_style_char_share"),
                       ({"validation_share": 0.5, "test_share": 0.5}, "test_share")):
        path.write_text(json.dumps({"boundary": bad}))
        with pytest.raises(ValueError, match=field):
            load_settings("toy", path)


def test_input_settings_name_what_is_missing(tmp_path):
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"inputs": {"source": "files", "prompts": {"path": "p.jsonl"}}}))
    with pytest.raises(ValueError, match="inputs.teacher_model, inputs.student_model"):
        load_settings("toy", path)
    path.write_text(json.dumps({"inputs": {"benchmark": [{"kind": "livecodebench"}]}}))
    with pytest.raises(ValueError, match="needs `path`"):
        load_settings("toy", path)
    path.write_text(json.dumps({"inputs": {"benchmark": [{"kind": "humaneval"}, {"kind": "humaneval"}]}}))
    with pytest.raises(ValueError, match="distinct"):
        load_settings("toy", path)
    path.write_text(json.dumps({"evaluate": {"samples_per_problem": 2, "pass_at_k": [1, 4]}}))
    with pytest.raises(ValueError, match="pass_at_k"):
        load_settings("toy", path)


def test_default_suites_follow_the_source(tmp_path):
    assert [b.suite_name for b in load_settings("toy").inputs.benchmark] == ["toy"]
    path = tmp_path / "o.json"
    path.write_text(json.dumps({"inputs": {"source": "files", "prompts": {"path": "p"}, "teacher_model": {"path": "t"},
                                           "student_model": {"path": "s"}}}))
    assert [b.suite_name for b in load_settings("toy", path).inputs.benchmark] == ["humaneval"]
    path.write_text(json.dumps({"inputs": {"benchmark": [{"kind": "livecodebench", "path": "x", "version": "v5"}]}}))
    [suite] = load_settings("toy", path).inputs.benchmark
    assert suite.suite_name == "livecodebench_v5" and [d.isoformat() for d in suite.release_window] == [
        "2024-08-01", "2025-02-01"]
