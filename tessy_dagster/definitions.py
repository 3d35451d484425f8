"""The one place that assembles assets and resources into Definitions (the Dagster code location).

Settings come from the environment: TESSY_PROFILE (toy | micro | research), TESSY_SETTINGS (a JSON overrides file),
TESSY_HOME (the artifact root). The settings' `launcher.mode` says where heavy steps run: `local`
subprocesses or Kubernetes Jobs.
"""

import os

from dagster import (AssetSelection, Definitions, define_asset_job, load_asset_checks_from_modules,
                     load_assets_from_modules)

from assets import audit, boundary, comparison, corpus, evaluation, inputs, synthesis, training
from assets.partitions import arm_partitions, score_partitions
from assets.retraining import prompts_sensor, refresh_inputs, retrain_schedule, with_retraining
from resources import StepLauncher, TessyConfig
from tessy_dagster.settings import load_settings

PROFILE = os.environ.get("TESSY_PROFILE", "toy")
OVERRIDES = os.environ.get("TESSY_SETTINGS", "")
# the schedule's cron and the sensor's interval are settings, read when the code location loads
settings = load_settings(PROFILE, OVERRIDES or None)

all_assets = with_retraining(load_assets_from_modules([inputs, boundary, synthesis, corpus, training, evaluation,
                                                          comparison]))
# the lineage audit on the fine-tuned students and their scores; pass these to `materialize` beside all_assets
all_checks = load_asset_checks_from_modules([audit])

# the student's own responses depend on the inputs only, and every arm's corpus needs them
inputs_and_boundary = AssetSelection.groups("inputs", "boundary") | AssetSelection.assets("student_responses")
arm_assets = AssetSelection.assets("cooperative_traces", "sft_corpus", "student_checkpoint")

defs = Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[
        define_asset_job("build_inputs_and_boundary", selection=inputs_and_boundary,
                         description="Inputs (toy world or a team's files), boundary dataset and boundary model, the "
                                     "student's own responses."),
        define_asset_job("synthesize_and_train", selection=arm_assets, partitions_def=arm_partitions,
                         description="One arm: traces, corpus (drift-checked), fine-tuned student."),
        define_asset_job("score", selection=AssetSelection.assets("benchmark_scores"),
                         partitions_def=score_partitions, description="Score one model on every benchmark suite."),
        define_asset_job("compare_arms", selection=AssetSelection.assets("arm_comparison"),
                         description="Compare every scored model (after `score`): the table, the verdict, the plots."),
        refresh_inputs,
    ],
    schedules=[retrain_schedule(settings.retrain)],
    sensors=[prompts_sensor(settings.retrain)],
    resources={
        "tessy": TessyConfig(
            profile=PROFILE,
            overrides_file=OVERRIDES,
            home=os.environ.get("TESSY_HOME", ".tessy"),
        ),
        "launcher": StepLauncher(),
    },
)
