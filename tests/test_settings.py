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
