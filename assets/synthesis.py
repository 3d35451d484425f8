"""Cooperative traces per arm: TESSY's student-teacher cooperation, or the teacher alone."""

from dagster import AssetExecutionContext, asset

from resources import StepLauncher, TessyConfig

from tessy_dagster.cooperate.baselines import uses_boundary

from .common import OWNERS, materialize_heavy, upstream
from .partitions import arm_partitions

CODE_VERSION = "7"  # 7: trace_key per row, per-prompt seeds (incremental synthesis)


@asset(group_name="synthesis", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=CODE_VERSION,
       pool="cooperative_traces",
       partitions_def=arm_partitions, deps=["prompts", "teacher_model", "student_model", "boundary_model"],
       description="Thinking traces per arm (tessy, teacher_only, the ablations teacher_think and "
                   "teacher_answer, and the baselines student_only, teacher_mix, teacher_score and "
                   "teacher_reference) with each span's author, token counts per role and how they ended; "
                   "written in shards, so a killed run resumes.")
def cooperative_traces(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    arm = context.partition_key
    # Arms whose thinking is the teacher's alone never consult the boundary model, so a new boundary model
    # does not invalidate them.
    names = ("prompts", "teacher_model", "student_model") + (
        ("boundary_model",) if uses_boundary(arm) else ())
    inputs = {name: upstream(tessy, name) for name in names}
    s = tessy.settings
    result = materialize_heavy(context, tessy, launcher, asset="cooperative_traces", partition=arm,
                               step="cooperative_traces", inputs=inputs, settings=s.cooperate.model_dump(),
                               code_version=CODE_VERSION, arm=arm, context_tokens=s.boundary.context_tokens)
    from tessy_dagster.plots import trace_figures

    from .common import plot_metadata, with_metadata
    return with_metadata(result, plot_metadata(trace_figures(tessy.dir("cooperative_traces", arm), arm)))


STUDENT_RESPONSES_VERSION = "3"


@asset(group_name="synthesis", kinds={"pytorch", "parquet"}, owners=OWNERS, code_version=STUDENT_RESPONSES_VERSION,
       pool="student_responses",
       deps=["prompts", "teacher_model", "student_model"],
       description="The student's own responses, two independent samples per prompt (reference/ and "
                   "calibration/ traces.parquet): what the style-drift metrics compare a corpus with and "
                   "calibrate their thresholds on.")
def student_responses(context: AssetExecutionContext, tessy: TessyConfig, launcher: StepLauncher):
    # write_traces loads both models, so the teacher folder is an input too (the student alone writes)
    inputs = {name: upstream(tessy, name) for name in ("prompts", "teacher_model", "student_model")}
    return materialize_heavy(context, tessy, launcher, asset="student_responses", partition=None,
                             step="student_responses", inputs=inputs, settings=student_sampling(tessy),
                             code_version=STUDENT_RESPONSES_VERSION)


# What the student's own sampling does not depend on: the arms, cooperation's chunk sizes and round limit, and
# verification (the student's own responses are drawn once per prompt, never again), so changing them keeps
# the artifact and every corpus calibrated on it.
NOT_STUDENT_SAMPLING = {"arms", "student_chunk_tokens", "teacher_chunk_tokens", "max_rounds", "verify_answers",
                        "score_candidates", "reference_prompt"}


def student_sampling(tessy: TessyConfig) -> dict:
    return tessy.settings.cooperate.model_dump(exclude=NOT_STUDENT_SAMPLING)
