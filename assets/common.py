"""What the thin assets share: upstream lookups, reuse of unchanged artifacts, results with data versions."""

from __future__ import annotations

import base64

from dagster import DataVersion, MaterializeResult, MetadataValue

from tessy_dagster.storage import build_artifact, data_location, data_version, read_manifest, reusable_manifest

OWNERS = ["team:tessy"]


def upstream(config, asset: str, partition: str | None = None) -> dict:
    """An upstream artifact's data folder and data version, from its key and partition (never "the newest").
    For an input read where it is (a team's model folder) the folder is that location."""
    folder = config.dir(asset, partition)
    manifest = read_manifest(folder)
    return {"dir": data_location(folder, manifest), "digest": data_version(manifest)}


def result_from_manifest(manifest: dict, out_dir, reused: bool) -> MaterializeResult:
    metadata = {k: v for k, v in manifest["metrics"].items() if isinstance(v, (int, float))}
    metadata.update(path=MetadataValue.path(data_location(out_dir, manifest)), digest=data_version(manifest),
                    reused=reused)
    return MaterializeResult(metadata=metadata, data_version=DataVersion(data_version(manifest)))


def outcome_metadata(outcomes: list[dict]) -> dict:
    """Asset-check metadata from Great Expectations outcomes (`gx_suite.ExpectationOutcome` as dicts)."""
    metadata = {f"{o['name']}.observed": o["observed"] for o in outcomes if o["observed"] is not None}
    metadata.update({f"{o['name']}.threshold": o["threshold"] for o in outcomes if o["threshold"] is not None})
    return metadata


def materialize_heavy(context, config, launcher, *, asset: str, partition: str | None, step: str, inputs: dict,
                      settings: dict, code_version: str, **extra) -> MaterializeResult:
    """Launch a heavy step, unless the artifact already exists for these exact inputs and settings."""
    out_dir = config.dir(asset, partition)
    manifest = reusable_manifest(out_dir, inputs, settings, code_version)
    if manifest:
        context.log.info(f"{out_dir} was built from these inputs and settings already: reusing it")
        return result_from_manifest(manifest, out_dir, reused=True)
    params = dict(out_dir=str(out_dir), inputs=inputs, settings=settings, code_version=code_version, **extra)
    return launcher.run(context, step, params, config.settings.launcher, home=str(config.root()),
                        partition=partition)


def materialize_local(context, config, *, asset: str, partition: str | None, inputs: dict, settings: dict,
                      code_version: str, build, extra: dict | None = None) -> MaterializeResult:
    """Build a light artifact in-process with `build(tmp_dir) -> metrics`, reusing an unchanged one."""
    out_dir = config.dir(asset, partition)
    manifest = reusable_manifest(out_dir, inputs, settings, code_version)
    reused = manifest is not None
    if not reused:
        manifest = build_artifact(out_dir, inputs=inputs, settings=settings, code_version=code_version, build=build,
                                  extra=extra)
    context.log.info(f"{asset}: {'reused' if reused else 'wrote'} {out_dir}")
    return result_from_manifest(manifest, out_dir, reused=reused)


def plot_metadata(figures: dict[str, bytes]) -> dict:
    """PNG figures ({title: png}) as Markdown metadata the Dagster UI shows inline (its Markdown allows
    data: image sources)."""
    return {title: MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})")
            for title, png in figures.items()}


def with_metadata(result: MaterializeResult, metadata: dict) -> MaterializeResult:
    """The same result (data version, checks, tags) with more metadata."""
    return MaterializeResult(asset_key=result.asset_key, metadata={**(result.metadata or {}), **metadata},
                             check_results=result.check_results, data_version=result.data_version, tags=result.tags)
