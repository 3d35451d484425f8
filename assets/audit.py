"""The lineage audit as an asset check on the fine-tuned students and their scores.

After each materialization of `student_checkpoint` and `benchmark_scores` (one partition), the audit walks the
artifact's lineage back to every input, recomputing each digest from the files on disk
(`tessy_dagster.audit`). The check fails with severity ERROR, naming each changed file, stale input and failed
verdict in its metadata.

Not blocking: it runs after the artifact is written and describes its provenance (the inputs' files as they
are now), not the artifact's own content, which the blocking Great Expectations checks upstream guard. A failed
audit is a record to act on (rematerialize what changed), not a reason to stop scoring a checkpoint that was
trained on what was there.
"""

import warnings

from dagster import (AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, MetadataValue, PreviewWarning,
                     asset_check)

from resources import TessyConfig
from tessy_dagster.audit import AuditUsageError, audit

from .partitions import arm_partitions, score_partitions

CHECK_NAME = "lineage_audit"


def _lineage_audit(asset: str, partitions_def):
    # A partitioned asset check is a Dagster preview feature: it is what runs the audit once per partition.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)

        @asset_check(asset=asset, name=CHECK_NAME, partitions_def=partitions_def, blocking=False,
                     description="Lineage audit: every input's digest recomputed from disk and compared with "
                                 "the manifests, inputs not rebuilt since, Great Expectations verdicts passed.")
        def _check(context: AssetCheckExecutionContext, tessy: TessyConfig) -> AssetCheckResult:
            try:
                report = audit(tessy.root(), asset, context.partition_key)
            except AuditUsageError as err:  # the artifact itself is not there: a failed check, not a failed run
                return AssetCheckResult(passed=False, severity=AssetCheckSeverity.ERROR, metadata={"error": str(err)})
            metadata = {"artifacts_audited": len(report.artifacts), "problems": len(report.problems),
                        "inputs": ", ".join(name for name in report.artifacts if name != report.root)}
            paths_by_kind: dict[str, list[str]] = {}  # changed, stale, missing, ...: the paths, one a line
            for problem in report.problems:
                paths_by_kind.setdefault(problem.kind, []).append(problem.path)
            metadata.update({kind: "\n".join(paths) for kind, paths in paths_by_kind.items()})
            if report.problems:
                metadata["report"] = MetadataValue.md("\n".join(
                    f"- **{p.kind}** `{p.path}`: {p.detail}" for p in report.problems))
            return AssetCheckResult(passed=report.ok, severity=AssetCheckSeverity.ERROR, metadata=metadata)

    return _check


student_checkpoint_lineage = _lineage_audit("student_checkpoint", arm_partitions)
benchmark_scores_lineage = _lineage_audit("benchmark_scores", score_partitions)
