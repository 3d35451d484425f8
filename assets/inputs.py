"""The inputs of the graph: prompts, benchmark suites, teacher and student.

The source is a setting (`inputs.source`): `toy`, where the embedded toy world builds them, or `files`, a
team's own prompts file and model folders. Both go through the same checks and tables, so everything
downstream is the same code path. This module and `resources/settings.py` are the input wiring: the only
code outside `tessy_dagster/toyworld/` that imports the toy world.
"""

import json

from dagster import (AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetExecutionContext, MaterializeResult,
                     asset)

from resources import StepLauncher, TessyConfig
from tessy_dagster.evaluate.suites import suite_digests, write_benchmark_table
from tessy_dagster.inputs.context import model_context_limits
from tessy_dagster.inputs.models import inspect_model_folder, write_model_record
from tessy_dagster.inputs.prompt_checks import PROMPT_CHECKS, PromptsInvalid
from tessy_dagster.inputs.prompts import build_prompts, source_digest

from .common import OWNERS, materialize_heavy, materialize_local, outcome_metadata, upstream

CODE_VERSION = "2"
CHECKS_FILE = "checks.json"  # the prompts suite's verdict, kept in the artifact


def _check_results(verdict: dict) -> list[AssetCheckResult]:
    return [AssetCheckResult(check_name=name, passed=verdict["checks"][name]["passed"],
                             severity=AssetCheckSeverity.ERROR,
                             metadata=outcome_metadata(verdict["checks"][name]["expectations"]))
            for name in PROMPT_CHECKS]


def prompts_source(s) -> dict:
    """Where the prompts come from, as the prompts artifact records it (its `inputs.source`): the toy world's
    settings, or a team's file with its content digest. The prompts sensor compares the two."""
    if s.inputs.source == "toy":
        return {"toyworld": s.toyworld.model_dump()}
    return {"path": s.inputs.prompts.path, "digest": source_digest(s.inputs.prompts)}


@asset(group_name="inputs", kinds={"python", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       deps=["teacher_model", "student_model"],
       check_specs=[AssetCheckSpec(name, asset="prompts", blocking=True, description=f"Great Expectations: {text}")
                    for name, text in PROMPT_CHECKS.items()],
       description="Task prompts for trace synthesis, normalized into the prompts table (toy world, or a team's "
                   "JSONL, Parquet or saved dataset), validated against every model's context.")
def prompts(context: AssetExecutionContext, tessy: TessyConfig):
    s = tessy.settings
    models = {role: upstream(tessy, f"{role}_model") for role in ("teacher", "student")}
    # room for the thinking trace and the answer after the prompt
    reserve = s.cooperate.max_student_tokens + s.cooperate.max_answer_tokens
    source = prompts_source(s)
    if s.inputs.source == "toy":
        from tessy_dagster.toyworld.world import prompt_rows

        settings = s.toyworld.model_dump()
        read = lambda: prompt_rows(s.toyworld)  # noqa: E731  (rows already in the table's shape)
        extra = None
    else:
        spec = s.inputs.prompts
        settings = spec.model_dump()
        read = spec
        extra = {"data_version": source["digest"]}

    def build(out):
        # the models' tokenizers are loaded only when the table is built, not when it is reused
        limits = model_context_limits({role: tessy.dir(f"{role}_model") for role in models})
        metrics, verdict = build_prompts(read, out, limits, reserve_tokens=reserve)
        (out / CHECKS_FILE).write_text(json.dumps(verdict, indent=2, default=str))
        return metrics

    try:
        result = materialize_local(context, tessy, asset="prompts", partition=None,
                                   inputs={"source": source, **models},
                                   settings={"source": settings, "reserve_tokens": reserve},
                                   code_version=CODE_VERSION, build=build, extra=extra)
    except PromptsInvalid as err:
        # The checks' verdict shows in the UI; the error names the file, row and field; nothing was written.
        yield from _check_results(err.verdict)
        raise
    verdict = json.loads((tessy.dir("prompts") / CHECKS_FILE).read_text())
    yield MaterializeResult(metadata=result.metadata, data_version=result.data_version,
                            check_results=_check_results(verdict))


@asset(group_name="inputs", kinds={"python", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       description="Held-out problems of every configured suite (toy, HumanEval, LiveCodeBench, final-answer "
                   "math), one table, each row with its tests and its source file and row.")
def benchmark(context: AssetExecutionContext, tessy: TessyConfig):
    s = tessy.settings
    suites = s.inputs.benchmark
    return materialize_local(context, tessy, asset="benchmark", partition=None,
                             inputs={"sources": suite_digests(suites)},
                             settings={"suites": [b.model_dump(mode="json") for b in suites],
                                       "toyworld": s.toyworld.model_dump()},
                             code_version=CODE_VERSION,
                             build=lambda out: write_benchmark_table(suites, out, toy_rows=_toy_rows(tessy)))


def _toy_rows(tessy: TessyConfig):
    """The toy suite's problems, built by the toy world (only when a toy suite is configured)."""
    def rows(suite_name: str) -> list[dict]:
        from tessy_dagster.toyworld.world import benchmark_rows

        return benchmark_rows(tessy.settings.toyworld, suite_name)
    return rows


def _model_asset(role: str):
    @asset(name=f"{role}_model", group_name="inputs", kinds={"pytorch", "huggingface"}, owners=OWNERS,
           code_version=CODE_VERSION, pool=f"{role}_model",
           description=f"The {role}: a save_pretrained folder read where it is (or a served model's tokenizer "
                       f"folder), with its digest, architecture, size, context and thinking markers; under the "
                       f"toy source, a tiny model trained from scratch.")
    def _asset(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
        s = tessy.settings
        if s.inputs.source == "toy":
            # One thread each: teacher and student train side by side on two cores.
            return materialize_heavy(context, tessy, launcher, asset=f"{role}_model", partition=None,
                                     step="toy_model", inputs={}, settings=s.toyworld.model_dump(),
                                     code_version=CODE_VERSION, role=role, threads=1)
        spec = getattr(s.inputs, f"{role}_model")
        context.log.info(f"reading the {role} where it is: {spec.path}")
        record = inspect_model_folder(spec.path, needs_weights=spec.endpoint is None)
        return materialize_local(context, tessy, asset=f"{role}_model", partition=None,
                                 inputs={"source": {"path": spec.path, "digest": record["digest"]}},
                                 settings=spec.model_dump(), code_version=CODE_VERSION,
                                 build=lambda out: write_model_record(record, out),
                                 extra={"location": spec.path, "data_version": record["digest"]})

    return _asset


teacher_model = _model_asset("teacher")
student_model = _model_asset("student")


