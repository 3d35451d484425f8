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
