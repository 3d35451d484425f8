"""Retraining: a schedule and a prompts sensor refresh the inputs; declarative automation rebuilds what changed.

Why the split. A retrain is a chain of runs over different partitions: the unpartitioned inputs first, then
each arm's traces, corpus and checkpoint, then each arm's scores, then the comparison. One run cannot hold
all of it (an asset job runs one partition), and a schedule or sensor requests runs, not an order between
them. So the schedule and the sensor request one run of `refresh_inputs` (prompts, benchmark, model records,
the student's own responses: each is reused when its source did not change), and every downstream asset
carries an automation condition that rebuilds an existing partition once an input's *data version* changed.
A reused input keeps its data version, so a tick that changed nothing rebuilds nothing, and a week with new
prompts rebuilds every built arm, from traces (only the new prompts are generated) to scores.

What it leaves alone, on purpose:
- the boundary dataset and model: they are trained on a sample of traces, not on the prompts a corpus is
  made from; retraining them on every new prompt would change the boundary model's digest and regenerate
  every tessy trace. Rebuild them by hand when you mean to; automation then rebuilds the tessy arm.
- partitions never built: an arm is built the first time by hand (or `make demo`), and kept up to date after.
"""

from __future__ import annotations

from dagster import (AssetSelection, AutomationCondition, DefaultSensorStatus, RunRequest, ScheduleDefinition,
                     SensorEvaluationContext, SkipReason, define_asset_job, map_asset_specs, sensor)

from resources import TessyConfig
from tessy_dagster.settings import RetrainSettings
from tessy_dagster.storage import MANIFEST, digest_json, read_manifest

from .inputs import prompts_source

REFRESH_JOB = "refresh_inputs"
# What retraining rebuilds when an input changed.
REBUILT_ON_CHANGE = ("cooperative_traces", "sft_corpus", "student_checkpoint", "benchmark_scores", "arm_comparison")

refresh_inputs = define_asset_job(
    REFRESH_JOB, selection=AssetSelection.groups("inputs") | AssetSelection.assets("student_responses"),
    tags={"tessy/retrain": "inputs"},
    description="Re-read the prompts, the benchmark and the model folders, and sample the student's responses to "
                "new prompts; unchanged inputs are reused. Requested by the retrain schedule and the prompts "
                "sensor; automation then rebuilds every built arm whose inputs changed.")


# The comparison reads every arm's scores and corpus and reports the ones never built as missing: a missing
# partition upstream (an arm not configured) must not hold it back.
TOLERATES_MISSING_DEPS = {"arm_comparison"}


def rebuild_when_an_input_changed(tolerate_missing_deps: bool = False) -> AutomationCondition:
    """True for a partition that exists, once a dependency's data version changed, when no dependency is
    in progress (nor missing, unless tolerated) and it is not running already."""
    changed = AutomationCondition.any_deps_match(AutomationCondition.data_version_changed())
    condition = (changed.since_last_handled()
                 & ~AutomationCondition.missing()
                 & ~AutomationCondition.any_deps_in_progress()
                 & ~AutomationCondition.in_progress())
    if not tolerate_missing_deps:
        condition = condition & ~AutomationCondition.any_deps_missing()
    return condition.with_label("rebuild when an input changed")


def with_retraining(assets: list) -> list:
    """The assets, with the rebuild condition on the ones retraining rebuilds."""
    def attach(spec):
        name = spec.key.to_user_string()
        if name not in REBUILT_ON_CHANGE:
            return spec
        return spec.replace_attributes(
            automation_condition=rebuild_when_an_input_changed(name in TOLERATES_MISSING_DEPS))

    return list(map_asset_specs(attach, assets))


def retrain_schedule(settings: RetrainSettings) -> ScheduleDefinition:
    try:
        return ScheduleDefinition(name="retrain_schedule", job=refresh_inputs, cron_schedule=settings.cron,
                                  execution_timezone=settings.timezone, tags={"tessy/trigger": "schedule"},
                                  description=f"Retrain on {settings.cron} ({settings.timezone}, setting "
                                              f"retrain.cron): refresh the inputs; automation rebuilds the arms.")
    except Exception as err:  # Dagster's message does not name the setting
        raise ValueError(f"settings retrain.cron / retrain.timezone: {err}") from err


def prompts_sensor(settings: RetrainSettings):
    @sensor(name="prompts_source_sensor", job=refresh_inputs, minimum_interval_seconds=settings.sensor_interval_seconds,
            default_status=DefaultSensorStatus.STOPPED,
            description="Requests refresh_inputs when the prompts source (a team's prompts file, or the toy world's "
                        "settings) differs from what the prompts artifact was built from.")
    def prompts_source_sensor(context: SensorEvaluationContext, tessy: TessyConfig):
        source = prompts_source(tessy.settings)
        digest = digest_json(source)
        if (tessy.dir("prompts") / MANIFEST).exists():  # none yet: the first run builds it
            built_from = read_manifest(tessy.dir("prompts"))["inputs"].get("source")
            if digest_json(built_from) == digest:
                context.update_cursor(digest)
                return SkipReason(f"the prompts artifact was built from this source already ({digest[:12]})")
        context.update_cursor(digest)
        # one run per source version: a tick while that run is queued or running requests nothing new
        return RunRequest(run_key=f"prompts-source-{digest[:16]}", tags={"tessy/trigger": "prompts_source_sensor"})

    return prompts_source_sensor
