"""Every arm and reference model compared per benchmark suite, with the paper's question answered in numbers."""

from pathlib import Path

from dagster import AllPartitionMapping, AssetDep, AssetExecutionContext, MetadataValue, asset

from resources import TessyConfig
from tessy_dagster.storage import MANIFEST

from .common import OWNERS, materialize_local, plot_metadata, upstream, with_metadata
from .partitions import arm_partitions, score_partitions

CODE_VERSION = "1"
FIGURES = {"scores per suite": "scores.png", "style drift per arm": "drift.png"}  # title -> file in the artifact


def materialized(tessy: TessyConfig, asset_name: str, partitions: list[str]) -> list[str]:
    """The partitions whose artifact exists (has a manifest), in partition order."""
    return [p for p in partitions if (tessy.dir(asset_name, p) / MANIFEST).exists()]


@asset(group_name="evaluation", kinds={"parquet", "numpy"}, owners=OWNERS, code_version=CODE_VERSION,
       pool="arm_comparison",
       deps=[AssetDep("benchmark_scores", partition_mapping=AllPartitionMapping()),
             AssetDep("sft_corpus", partition_mapping=AllPartitionMapping())],
       description="Every scored arm and reference model per benchmark suite (and bucket): pass@1 with its "
                   "bootstrap interval over problems and its spread over samples, pass@k, thinking length, "
                   "truncation, marker rates; each arm's corpus style; and whether tessy beats teacher_only and "
                   "the base student (paired differences with intervals). Models not scored are listed as missing.")
def arm_comparison(context: AssetExecutionContext, tessy: TessyConfig):
    from tessy_dagster import compare, plots

    models = score_partitions.get_partition_keys()
    scored = materialized(tessy, "benchmark_scores", models)
    missing = [m for m in models if m not in scored]
    corpora = materialized(tessy, "sft_corpus", arm_partitions.get_partition_keys())
    if missing:
        context.log.warning(f"not scored (no benchmark_scores artifact): {', '.join(missing)}; compared without them")
    inputs = {**{f"benchmark_scores/{m}": upstream(tessy, "benchmark_scores", m) for m in scored},
              **{f"sft_corpus/{arm}": upstream(tessy, "sft_corpus", arm) for arm in corpora}}
    score_dirs = {m: Path(inputs[f"benchmark_scores/{m}"]["dir"]) for m in scored}
    corpus_dirs = {arm: Path(inputs[f"sft_corpus/{arm}"]["dir"]) for arm in corpora}

    def build(out_dir: Path) -> dict:
        comparison = compare.compare(score_dirs, missing, corpus_dirs)
        metrics = compare.write_comparison(comparison, out_dir)
        (out_dir / FIGURES["scores per suite"]).write_bytes(plots.scores_by_suite(comparison.rows))
        (out_dir / FIGURES["style drift per arm"]).write_bytes(plots.drift_figure(corpus_dirs))
        return metrics

    settings = {"bootstrap": compare.BOOTSTRAP, "comparisons": compare.COMPARISONS, "missing": missing}
    result = materialize_local(context, tessy, asset="arm_comparison", partition=None, inputs=inputs,
                               settings=settings, code_version=CODE_VERSION, build=build)
    folder = tessy.dir("arm_comparison")
    return with_metadata(result, {
        "comparison": MetadataValue.md((folder / compare.MARKDOWN_FILE).read_text()),
        "scored": MetadataValue.text(", ".join(scored)),
        "missing": MetadataValue.text(", ".join(missing) or "none"),
        **plot_metadata({title: (folder / name).read_bytes() for title, name in FIGURES.items()}),
    })
