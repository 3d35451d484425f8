import subprocess
import sys

from tessy_dagster.definitions import all_assets, defs


def test_every_asset_is_documented_grouped_owned_and_versioned():
    specs = [spec for a in all_assets for spec in a.specs]
    assert {s.key.to_user_string() for s in specs} == {
        "prompts", "benchmark", "teacher_model", "student_model", "boundary_dataset", "boundary_model",
        "cooperative_traces", "student_responses", "sft_corpus", "student_checkpoint", "benchmark_scores",
        "arm_comparison"}
    for spec in specs:
        assert spec.group_name and spec.owners and spec.code_version and spec.description and spec.kinds


def test_the_quality_checks_are_blocking():
    checks = {c.name: c for a in all_assets for c in a.check_specs}
    assert checks["style_drift"].asset_key.to_user_string() == "sft_corpus"
    dataset_checks = {"both_sources_present", "style_char_share_in_band", "rejection_rate_below_max",
                      "spans_well_formed"}
    prompt_checks = {"ids_unique", "prompts_non_empty", "prompts_fit_context"}
    assert set(checks) == {"style_drift"} | dataset_checks | prompt_checks
    assert all(checks[name].asset_key.to_user_string() == "boundary_dataset" for name in dataset_checks)
    assert all(checks[name].asset_key.to_user_string() == "prompts" for name in prompt_checks)
    assert all(c.blocking for c in checks.values())


def test_lineage_runs_from_models_and_prompts_to_scores():
    graph = defs.resolve_asset_graph()
    upstream = {k.to_user_string() for k in graph.get(
        next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "benchmark_scores")).parent_keys}
    assert upstream == {"benchmark", "teacher_model", "student_model", "student_checkpoint"}


def test_the_corpus_is_built_from_the_traces_the_models_and_the_students_own_responses():
    graph = defs.resolve_asset_graph()
    corpus = next(k for k in graph.get_all_asset_keys() if k.to_user_string() == "sft_corpus")
    assert {k.to_user_string() for k in graph.get(corpus).parent_keys} == {
        "cooperative_traces", "student_model", "boundary_model", "student_responses", "prompts", "benchmark"}


def test_loading_the_code_location_does_not_import_torch():
    code = "import sys, tessy_dagster.definitions; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_only_the_input_wiring_imports_the_toy_world():
    """The toy world is one source of inputs: no stage imports it (its own step and the input wiring do)."""
    import ast
    from pathlib import Path

    root = Path(__file__).parent.parent
    allowed = {"assets/inputs.py", "resources/settings.py", "tessy_dagster/steps/toy_model.py"}
    offenders = []
    for path in [*root.glob("tessy_dagster/**/*.py"), *root.glob("assets/*.py"), *root.glob("resources/*.py")]:
        name = str(path.relative_to(root))
        if name.startswith("tessy_dagster/toyworld/") or name in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] + [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else []
            if any("toyworld" in m for m in modules):
                offenders.append(name)
    assert offenders == []
