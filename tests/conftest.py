"""Shared fixtures: micro settings and a micro world (tiny teacher, student, boundary model) built once."""

import os
import random

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tessy_dagster.settings import ARMS, REFERENCE_MODELS, load_settings  # noqa: E402

SCORED_ARMS = REFERENCE_MODELS + ARMS


@pytest.fixture(scope="session")
def micro():
    """The micro profile as the assets see it: with the toy world's lexicons filled in by the input wiring."""
    from resources.settings import resolve_settings

    return resolve_settings(load_settings("micro"))


@pytest.fixture(scope="session")
def micro_world(tmp_path_factory, micro):
    """Prompts, benchmark, teacher, student and boundary model built by the engine (no Dagster)."""
    import pyarrow as pa

    from tessy_dagster import schemas
    from tessy_dagster.boundary.dataset import build_boundary_dataset, train_from_windows
    from tessy_dagster.storage import write_table
    from tessy_dagster.toyworld.models import build_toy_model
    from tessy_dagster.toyworld.world import benchmark_rows, prompt_rows

    root = tmp_path_factory.mktemp("micro_world")
    quiet = lambda message: None  # noqa: E731
    dirs = {name: root / name for name in ("prompts", "benchmark", "teacher", "student", "windows", "boundary")}
    for d in dirs.values():
        d.mkdir()
    write_table(pa.Table.from_pylist(prompt_rows(micro.toyworld)), dirs["prompts"] / "prompts.parquet", schemas.PROMPTS)
    write_table(pa.Table.from_pylist(benchmark_rows(micro.toyworld)), dirs["benchmark"] / "problems.parquet",
                schemas.BENCHMARK_PROBLEMS)
    for role in ("teacher", "student"):
        build_toy_model(role, micro.toyworld, dirs[role], quiet)
    build_boundary_dataset(teacher_dir=dirs["teacher"], student_dir=dirs["student"],
                           prompts_path=dirs["prompts"] / "prompts.parquet", settings=micro.boundary,
                           out_dir=dirs["windows"], progress=quiet)
    train_from_windows(dataset_dir=dirs["windows"], toy_tokenizer_dir=dirs["student"],
                       settings=micro.boundary, out_dir=dirs["boundary"], progress=quiet)
    return dirs


UNPARTITIONED = ["prompts", "benchmark", "teacher_model", "student_model", "boundary_dataset", "boundary_model",
                 "student_responses"]
ARM_ASSETS = ["cooperative_traces", "sft_corpus", "student_checkpoint"]
ABLATIONS = ("teacher_think", "teacher_answer")  # the paper's ablation arms: traces and corpus only, for time
# the paper's other baselines (cooperate/baselines.py): traces only, for time (their corpus is any arm's)
BASELINES = ("student_only", "teacher_mix", "teacher_score", "teacher_reference")


def micro_resources(home, overrides=""):
    from resources import StepLauncher, TessyConfig

    return {"tessy": TessyConfig(profile="micro", home=str(home), overrides_file=str(overrides)),
            "launcher": StepLauncher()}


class MicroGraph:
    """The whole micro graph, materialized once per session through Dagster into a persistent instance
    (`dagster_home`, SQLite), so the lineage audit, the comparisons and the web UI read the same runs."""

    def __init__(self, home, dagster_home, instance, results):
        self.home, self.dagster_home, self.instance, self.results = home, dagster_home, instance, results


@pytest.fixture(scope="session")
def micro_graph(tmp_path_factory):
    from dagster import DagsterInstance, materialize

    from tessy_dagster.definitions import all_assets, all_checks
    from tessy_dagster.settings import ARMS

    home = tmp_path_factory.mktemp("tessy_home")
    dagster_home = tmp_path_factory.mktemp("dagster_home")
    instance = DagsterInstance.local_temp(str(dagster_home))
    run = lambda selection, partition=None: materialize(  # noqa: E731
        [*all_assets, *all_checks], selection=selection, partition_key=partition, resources=micro_resources(home),
        instance=instance)
    results = {"inputs": run(UNPARTITIONED)}
    for arm in ARMS:
        results[arm] = run(ARM_ASSETS, arm)
    for arm in SCORED_ARMS:
        results[f"scores_{arm}"] = run(["benchmark_scores"], arm)
    for arm in ABLATIONS:
        results[arm] = run(["cooperative_traces", "sft_corpus"], arm)
    for arm in BASELINES:
        results[arm] = run(["cooperative_traces"], arm)
    return MicroGraph(home, dagster_home, instance, results)


@pytest.fixture
def rng():
    return random.Random(0)
