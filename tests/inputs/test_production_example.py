"""examples/production.json: the paper's setup as settings. Every path it names is reported clearly when
missing, by the preflight command and by the assets themselves."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from dagster import DagsterInstance, materialize

from resources import StepLauncher, TessyConfig
from tessy_dagster.definitions import all_assets
from tessy_dagster.inputs.preflight import check_paths
from tessy_dagster.settings import load_settings

EXAMPLE = Path(__file__).parents[2] / "examples" / "production.json"
NAMED_PATHS = {
    "inputs.prompts.path": "/data/tessy/prompts/tessy_code_prompts.jsonl",
    "inputs.teacher_model.path": "/models/gpt-oss-120b",
    "inputs.student_model.path": "/models/Qwen3-8B",
    "inputs.benchmark[1].path": "/data/livecodebench/code_generation_lite",
    "boundary.annotator_model": "/models/Qwen3-235B-A22B-Instruct-2507",
    "boundary.base_model": "/models/Qwen3-0.6B-Base",
}


def test_the_example_is_the_papers_setup():
    s = load_settings("toy", EXAMPLE)
    assert s.inputs.source == "files" and s.inputs.teacher_model.endpoint and s.cooperate.generation.backend == "openai"
    assert [b.suite_name for b in s.inputs.benchmark] == ["humaneval", "livecodebench_v6"]
    assert s.inputs.benchmark[1].release_window[0].isoformat() == "2025-02-01"
    assert (s.cooperate.sampling.temperature, s.cooperate.sampling.top_p, s.cooperate.sampling.top_k) == (0.7, 0.8, 20)
    assert (s.boundary.learning_rate, s.boundary.epochs, s.boundary.context_tokens) == (1e-5, 3, 200)
    assert (s.sft.learning_rate, s.sft.batch_size, s.evaluate.sampling.temperature) == (5e-5, 128, 0.6)


def test_preflight_names_every_missing_path():
    checks = {c.setting: c for c in check_paths(load_settings("toy", EXAMPLE))}
    assert set(checks) == set(NAMED_PATHS)
    for setting, path in NAMED_PATHS.items():
        assert checks[setting].path == path and path in checks[setting].problem and "does not exist" in checks[
            setting].problem
    out = subprocess.run([sys.executable, "-m", "tessy_dagster.inputs.preflight", "--settings", str(EXAMPLE)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    for setting, path in NAMED_PATHS.items():
        assert f"MISSING {setting} = {path}" in out.stdout
    assert "6 paths checked, 6 with problems" in out.stdout


def test_preflight_passes_once_the_paths_are_there(micro_world, tmp_path):
    """The same settings pointed at folders that exist: the toy models stand in for every model."""
    data = json.loads(EXAMPLE.read_text())
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"id": "a", "prompt": "Write f."}\n')
    lcb = tmp_path / "lcb"
    lcb.mkdir()
    for role in ("teacher", "student"):
        shutil.copytree(micro_world[role], tmp_path / role)
        data["inputs"][f"{role}_model"]["path"] = str(tmp_path / role)
    data["inputs"]["prompts"]["path"] = str(prompts)
    data["inputs"]["benchmark"][1]["path"] = str(lcb)
    data["boundary"]["annotator_model"] = data["boundary"]["base_model"] = str(tmp_path / "student")
    settings_file = tmp_path / "settings.json"
    settings_file.write_text(json.dumps(data))
    checks = check_paths(load_settings("toy", settings_file))
    assert [c.problem for c in checks] == [None] * 6
    # served models (both have an endpoint here) need only their tokenizers; the boundary base model is
    # trained here and needs its weights
    (tmp_path / "teacher" / "model.safetensors").unlink()
    (tmp_path / "student" / "model.safetensors").unlink()
    problems = {c.setting: c.problem for c in check_paths(load_settings("toy", settings_file)) if c.problem}
    assert set(problems) == {"boundary.base_model"} and "no weights" in problems["boundary.base_model"]


def _failure_text(result) -> str:
    texts = []
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error is not None:
                texts.append(error.message)
                error = error.cause
    return "\n".join(texts)


def test_the_input_assets_fail_naming_the_missing_path(tmp_path):
    resources = {"tessy": TessyConfig(profile="toy", home=str(tmp_path / "home"), overrides_file=str(EXAMPLE)),
                 "launcher": StepLauncher()}
    for asset, path in (("teacher_model", "/models/gpt-oss-120b"), ("student_model", "/models/Qwen3-8B"),
                        ("benchmark", "/data/livecodebench/code_generation_lite")):
        result = materialize(all_assets, selection=[asset], resources=resources,
                             instance=DagsterInstance.ephemeral(), raise_on_error=False)
        assert not result.success
        assert path in _failure_text(result)
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("manifest.json"))
