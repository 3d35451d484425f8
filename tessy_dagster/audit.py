"""The lineage audit: from one artifact back to every input it was made from, each digest recomputed from disk.

Every artifact's manifest names its inputs (`inputs`: name -> {dir, digest}); a `dir` is another artifact's
folder under the same home, or the `location` of an input read where it is (a team's model folder). The
audit walks that graph from one artifact and, for every artifact on the way:

- recomputes the folder's digest and compares it with the manifest's; on a mismatch it names each file that
  was modified, added or removed since (from the manifest's per-file digests; a manifest written before they
  existed names the folder);
- recomputes the digest of what is read where it is (a model folder at its `location`, a team's prompts file,
  a benchmark suite's file) and compares it with the recorded one;
- checks that each input's recorded digest is that input's current data version (else the input was rebuilt
  after this artifact was made: stale);
- reads the Great Expectations verdicts the artifact keeps (the prompts' and the boundary dataset's
  checks.json, the corpus' drift_report.json);
- reports the settings, code version and fingerprint each was made with.

`python -m tessy_dagster.audit ASSET [PARTITION]` prints the tree and exits 0 when everything matches, 1 when
a file changed, an input is stale or missing, or a verdict failed, and 2 on a usage error. `--query NAME`
runs one of the named DuckDB queries over the same lineage instead (`audit_queries.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .storage import (MANIFEST, UNPARTITIONED, data_location, data_version, digest_dir_and_files, digest_json,
                      digest_path, tessy_home)

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2

# The Great Expectations verdicts an artifact keeps beside its data (the prompts' file name is set in
# assets/inputs.py, a Dagster module this one may not import; the others are the engine's constants).
VERDICT_FILES = {"prompts": "checks.json", "boundary_dataset": "checks.json", "sft_corpus": "drift_report.json"}


class AuditUsageError(Exception):
    """The audit cannot start: an unknown asset, a partition that is not there, a missing root manifest."""


@dataclass
class Problem:
    kind: str  # changed | stale | missing | verdict_failed | unreadable
    artifact: str  # the label of the artifact it was found on, e.g. "cooperative_traces[tessy]"
    path: str  # the file or folder it concerns
    detail: str


@dataclass
class Input:
    name: str  # the input's name in the manifest
    dir: str  # where the artifact read it from, as recorded
    digest: str  # the data version it read, as recorded
    artifact: str | None  # the upstream artifact's label; None when no artifact of the home keeps it


@dataclass
class Source:
    """Something read from outside the artifact store: a team's prompts file, a benchmark suite's file."""
    name: str
    path: str
    recorded: str
    current: str | None = None  # None when it could not be recomputed (the problem says why)


@dataclass
class Verdict:
    file: str
    passed: bool
    checks: dict[str, bool]


@dataclass
class Artifact:
    asset: str
    partition: str
    folder: str
    manifest: dict | None  # None: the folder or its manifest is missing (a problem says which)
    inputs: list[Input] = field(default_factory=list)
    recomputed_digest: str | None = None
    sources: list[Source] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def label(self) -> str:
        return label(self.asset, self.partition)

    @property
    def data_version(self) -> str | None:
        return data_version(self.manifest) if self.manifest else None

    @property
    def data_dir(self) -> str:
        """Where the artifact's data is: its folder, or the location of an input read where it is."""
        return data_location(self.folder, self.manifest) if self.manifest else self.folder


def label(asset: str, partition: str) -> str:
    return asset if partition == UNPARTITIONED else f"{asset}[{partition}]"


@dataclass
class Lineage:
    """The artifacts upstream of `root` (itself included), by label, in the order the walk met them."""
    home: str
    root: str
    artifacts: dict[str, Artifact]

    @property
    def problems(self) -> list[Problem]:
        return [p for a in self.artifacts.values() for p in a.problems]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_PROBLEMS

    def of_asset(self, asset: str) -> list[Artifact]:
        return [a for a in self.artifacts.values() if a.asset == asset and a.manifest is not None]

    def to_json(self) -> dict:
        return {"home": self.home, "artifact": self.root, "ok": self.ok, "exit_code": self.exit_code,
                "problems": [asdict(p) for p in self.problems],
                "artifacts": {name: _artifact_json(a) for name, a in self.artifacts.items()}}


# ---- the graph ------------------------------------------------------------------------------------------------

def lineage(home: str | Path, asset: str, partition: str | None = None) -> Lineage:
    """Walk the manifests from `asset`/`partition` back to every input (no digest recomputed: see `audit`).
    Raises AuditUsageError when the starting artifact is not in `home`."""
    home = Path(home)
    root = _root_folder(home, asset, partition)
    locations = _locations(home)
    artifacts: dict[str, Artifact] = {}
    _visit(home, root.parent.name, root.name, locations, artifacts)
    return Lineage(home=str(home), root=label(root.parent.name, root.name), artifacts=artifacts)


def home_lineage(home: str | Path) -> Lineage:
    """Every artifact of `home` and what it was made from (the scope of a query run without an artifact)."""
    home = Path(home)
    if not home.is_dir():
        raise AuditUsageError(f"{home} is not a folder: set --home or TESSY_HOME to the artifact store")
    locations = _locations(home)
    artifacts: dict[str, Artifact] = {}
    for manifest in _manifests(home):
        _visit(home, manifest.parent.parent.name, manifest.parent.name, locations, artifacts)
    return Lineage(home=str(home), root=str(home), artifacts=artifacts)


def _root_folder(home: Path, asset: str, partition: str | None) -> Path:
    if not (home / asset).is_dir():
        here = sorted(p.name for p in home.iterdir() if p.is_dir() and not p.name.startswith(".")) \
            if home.is_dir() else []
        raise AuditUsageError(f"no artifact of asset {asset!r} in {home} (assets materialized there: "
                              f"{', '.join(here) or 'none'})")
    partitions = sorted(p.name for p in (home / asset).iterdir() if p.is_dir() and not p.name.startswith("."))
    if partition is None:
        if partitions != [UNPARTITIONED]:
            raise AuditUsageError(f"{asset} is partitioned: name a partition ({', '.join(partitions)})")
        partition = UNPARTITIONED
    folder = home / asset / partition
    if not (folder / MANIFEST).exists():
        raise AuditUsageError(f"{folder / MANIFEST} is missing: {label(asset, partition)} was not materialized "
                              f"in {home} (partitions there: {', '.join(partitions) or 'none'})")
    return folder


def _manifests(home: Path) -> list[Path]:
    """Every artifact's manifest (`<asset>/<partition>/manifest.json`), leaving out the hidden folders where
    artifacts are written before they are renamed into place and where steps keep their progress."""
    return sorted(p for p in home.glob(f"*/*/{MANIFEST}")
                  if not (p.parent.name.startswith(".") or p.parent.parent.name.startswith(".")))


def _locations(home: Path) -> dict[str, tuple[str, str]]:
    """Where each input read where it is keeps its data -> the (asset, partition) that records it."""
    out = {}
    for path in _manifests(home):
        try:
            location = json.loads(path.read_text()).get("location")
        except ValueError:
            continue  # reported where the walk meets it
        if location:
            out[str(Path(location).resolve())] = (path.parent.parent.name, path.parent.name)
    return out


def _visit(home: Path, asset: str, partition: str, locations: dict[str, tuple[str, str]],
           artifacts: dict[str, Artifact]) -> None:
    name = label(asset, partition)
    if name in artifacts:
        return
    folder = home / asset / partition
    artifact = artifacts[name] = Artifact(asset, partition, str(folder), manifest=None)
    if not (folder / MANIFEST).exists():
        artifact.problems.append(Problem("missing", name, str(folder / MANIFEST),
                                         f"{folder / MANIFEST} is missing: {name} is read by a downstream "
                                         f"artifact but is not materialized in {home}"))
        return
    try:
        manifest = artifact.manifest = json.loads((folder / MANIFEST).read_text())
    except ValueError as err:
        artifact.problems.append(Problem("unreadable", name, str(folder / MANIFEST), f"not JSON: {err}"))
        return
    for input_name, value in manifest.get("inputs", {}).items():
        if not (isinstance(value, dict) and "dir" in value):
            continue  # a source read from outside the store (checked by `_source_problems`), or settings
        upstream = _upstream(home, value["dir"], locations)
        artifact.inputs.append(Input(input_name, value["dir"], value.get("digest", ""),
                                     label(*upstream) if upstream else None))
        if upstream:
            _visit(home, *upstream, locations, artifacts)


def _upstream(home: Path, recorded_dir: str, locations: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The (asset, partition) whose data `recorded_dir` is: an input read where it is, by its location; an
    artifact folder, by its last two names (`<asset>/<partition>`), so a home copied or mounted elsewhere
    still resolves to its own artifacts."""
    path = Path(recorded_dir)
    if str(path.resolve()) in locations:
        return locations[str(path.resolve())]
    if (home / path.parent.name / path.name).is_dir():
        return path.parent.name, path.name
    return None


# ---- the audit ------------------------------------------------------------------------------------------------

def audit(home: str | Path, asset: str, partition: str | None = None) -> Lineage:
    """The lineage of `asset`/`partition` with every digest recomputed, every input's version compared and
    every verdict read; `.problems` lists what does not match (empty: the audit passed)."""
    graph = lineage(home, asset, partition)
    for artifact in graph.artifacts.values():
        if artifact.manifest is None:
            continue
        artifact.problems += _content_problems(artifact)
        artifact.problems += _location_problems(artifact)
        artifact.problems += _source_problems(artifact)
        artifact.problems += _verdict_problems(artifact)
        artifact.problems += _input_problems(artifact, graph)
    return graph


def _content_problems(artifact: Artifact) -> list[Problem]:
    folder = Path(artifact.folder)
    recorded = artifact.manifest["digest"]
    artifact.recomputed_digest, files = digest_dir_and_files(folder)
    if artifact.recomputed_digest == recorded:
        return []
    recorded_files = artifact.manifest.get("files")
    if recorded_files is None:
        return [Problem("changed", artifact.label, str(folder),
                        f"the folder's content changed since {artifact.label} was materialized (digest "
                        f"{recorded[:12]}, now {artifact.recomputed_digest[:12]}); its manifest predates "
                        f"per-file digests, so the file is not named")]
    problems = []
    for name in sorted(set(files) | set(recorded_files)):
        if name not in files:
            how = "removed"
        elif name not in recorded_files:
            how = "added"
        elif files[name] != recorded_files[name]:
            how = "modified"
        else:
            continue
        problems.append(Problem("changed", artifact.label, str(folder / name),
                                f"{how} after {artifact.label} was materialized"))
    return problems or [Problem("changed", artifact.label, str(folder),
                                f"the folder digest {recorded[:12]} does not match its files (now "
                                f"{artifact.recomputed_digest[:12]}); the manifest itself was edited")]


def _location_problems(artifact: Artifact) -> list[Problem]:
    """An input read where it is (a team's model folder): its content digest is the artifact's data version."""
    location = artifact.manifest.get("location")
    if not location:
        return []
    if not Path(location).exists():
        return [Problem("missing", artifact.label, location, f"{location} is gone: {artifact.label} reads it "
                                                             f"where it is")]
    current = digest_path(location)
    artifact.sources.append(Source("location", location, artifact.data_version, current))
    if current == artifact.data_version:
        return []
    return [Problem("changed", artifact.label, location,
                    f"changed since {artifact.label} was materialized (digest {artifact.data_version[:12]}, now "
                    f"{current[:12]}); rematerialize {artifact.asset} to inspect it again")]


def _source_problems(artifact: Artifact) -> list[Problem]:
    """Files read from outside the store whose digest the artifact records: a team's prompts file, the
    benchmark suites' files."""
    recompute = SOURCE_DIGESTS.get(artifact.asset)
    if recompute is None:
        return []
    problems = []
    for name, path, recorded, compute in recompute(artifact.manifest):
        try:
            current = compute()
        except (FileNotFoundError, ValueError, ImportError) as err:  # gone, or its recorded settings no longer load
            artifact.sources.append(Source(name, path, recorded))
            kind = "missing" if isinstance(err, FileNotFoundError) else "unreadable"
            problems.append(Problem(kind, artifact.label, path, f"{name}: its digest cannot be recomputed: {err}"))
            continue
        artifact.sources.append(Source(name, path, recorded, current))
        if current != recorded:
            problems.append(Problem("changed", artifact.label, path,
                                    f"{name} changed since {artifact.label} was materialized (digest "
                                    f"{recorded[:12]}, now {current[:12]})"))
    return problems


def _prompts_sources(manifest: dict):
    source = manifest["inputs"].get("source", {})
    if "path" not in source:
        return []  # the toy world's prompts: made from settings, nothing read from disk

    def compute():
        from .inputs.prompts import source_digest
        from .settings import PromptsFile

        return source_digest(PromptsFile.model_validate(manifest["settings"]["source"]))
    return [("prompts file", source["path"], source["digest"], compute)]


def _benchmark_sources(manifest: dict):
    from .settings import BenchmarkSuite

    recorded = manifest["inputs"].get("sources", {})
    out = []
    for dump in manifest["settings"].get("suites", []):
        suite = BenchmarkSuite.model_validate(dump)

        def compute(suite=suite):
            from .evaluate.suites import source_digest

            return source_digest(suite)
        where = suite.path or f"({suite.kind} suite: {'its settings' if suite.kind == 'toy' else 'its package'})"
        out.append((f"benchmark suite {suite.suite_name}", where, recorded.get(suite.suite_name, ""), compute))
    return out


SOURCE_DIGESTS = {"prompts": _prompts_sources, "benchmark": _benchmark_sources}


def _verdict_problems(artifact: Artifact) -> list[Problem]:
    name = VERDICT_FILES.get(artifact.asset)
    if name is None:
        return []
    path = Path(artifact.folder) / name
    if not path.exists():
        return [Problem("missing", artifact.label, str(path), f"{path} is missing: the checks' verdict of "
                                                              f"{artifact.label} was never written")]
    try:
        verdict = read_verdict(path)
    except (ValueError, KeyError, TypeError) as err:
        return [Problem("unreadable", artifact.label, str(path), f"not a verdict the platform writes: {err!r}")]
    artifact.verdicts.append(verdict)
    if verdict.passed:
        return []
    failed = [check for check, passed in verdict.checks.items() if not passed]
    return [Problem("verdict_failed", artifact.label, str(path),
                    f"Great Expectations verdict failed: {', '.join(failed) or 'success is false'}")]


def read_verdict(path: Path) -> Verdict:
    """A kept verdict, in either shape the platform writes: {"checks": {name: {"passed"}}} (prompts, boundary
    dataset) or {"outcomes": [{"name", "success"}]} (the corpus' style-drift suite)."""
    data = json.loads(path.read_text())
    if "checks" in data:
        checks = {name: bool(c["passed"]) for name, c in data["checks"].items()}
    else:
        checks = {o["name"]: bool(o["success"]) for o in data.get("outcomes", [])}
    return Verdict(str(path), bool(data["success"]), checks)


def _input_problems(artifact: Artifact, graph: Lineage) -> list[Problem]:
    problems = []
    for item in artifact.inputs:
        if item.artifact is None:
            problems.append(Problem("missing", artifact.label, item.dir,
                                    f"input {item.name} was read from {item.dir}, which no artifact of "
                                    f"{graph.home} keeps now (moved, or its asset was rebuilt elsewhere)"))
            continue
        upstream = graph.artifacts[item.artifact]
        if upstream.manifest is not None and upstream.data_version != item.digest:
            problems.append(Problem("stale", artifact.label, upstream.folder,
                                    f"{artifact.label} was made from {item.artifact} {item.digest[:12]}, which "
                                    f"is now {upstream.data_version[:12]}: {item.artifact} was rebuilt after"))
    return problems


# ---- output ---------------------------------------------------------------------------------------------------

def _artifact_json(a: Artifact) -> dict:
    m = a.manifest or {}
    return {"asset": a.asset, "partition": a.partition, "folder": a.folder, "location": m.get("location"),
            "digest": m.get("digest"), "recomputed_digest": a.recomputed_digest, "data_version": a.data_version,
            "code_version": m.get("code_version"), "fingerprint": m.get("fingerprint"),
            "settings": m.get("settings"), "metrics": m.get("metrics"),
            "inputs": [asdict(i) for i in a.inputs], "sources": [asdict(s) for s in a.sources],
            "verdicts": [asdict(v) for v in a.verdicts], "problems": [asdict(p) for p in a.problems]}


def render_tree(graph: Lineage, settings: bool = False) -> str:
    """The lineage as an indented tree, each artifact's digest, code version, settings digest, verdicts and
    problems; an artifact met again is named, not repeated."""
    lines: list[str] = []
    shown: set[str] = set()

    def walk(name: str, edge: str, prefix: str, child_prefix: str):
        a = graph.artifacts[name]
        head = f"{prefix}{edge}{name}"
        if name in shown:
            lines.append(f"{head}  (above)")
            return
        shown.add(name)
        m = a.manifest
        if m is None:
            lines.append(f"{head}  MISSING")
        else:
            status = "ok" if not a.problems else "PROBLEM"
            lines.append(f"{head}  {status}  digest {data_version(m)[:12]}  code_version {m.get('code_version')}"
                         f"  settings {digest_json(m.get('settings'))[:12]}")
        detail = [f"folder {a.folder}"] + ([f"reads {m['location']} where it is"] if m and m.get("location") else [])
        detail += [f"source {s.name}: {s.path} {s.recorded[:12]}" for s in a.sources]
        for v in a.verdicts:
            failed = [c for c, passed in v.checks.items() if not passed]
            outcome = "passed" if v.passed else f"FAILED {', '.join(failed)}"
            detail.append(f"verdict {Path(v.file).name}: {outcome} ({len(v.checks)} checks)")
        if settings and m:
            detail += [f"setting {k} = {v}" for k, v in _flatten(m.get("settings") or {})]
        detail += [f"{p.kind.upper()} {p.path}: {p.detail}" for p in a.problems]
        bar = "│  " if a.inputs else "   "
        lines.extend(f"{child_prefix}{bar}{d}" for d in detail)
        for i, item in enumerate(a.inputs):
            last = i == len(a.inputs) - 1
            edge_text = "└─ " if last else "├─ "
            if item.artifact is None:
                lines.append(f"{child_prefix}{edge_text}{item.name}: {item.dir}  MISSING")
                continue
            if item.name != graph.artifacts[item.artifact].asset:  # e.g. benchmark_scores' "model"
                edge_text += f"{item.name}: "
            walk(item.artifact, edge_text, child_prefix, child_prefix + ("   " if last else "│  "))

    walk(graph.root, "", "", "")
    problems = graph.problems
    lines.append("")
    if problems:
        lines.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}:")
        lines += [f"  {p.kind.upper()}  {p.path}  ({p.artifact}: {p.detail})" for p in problems]
    lines.append(f"lineage audit of {graph.root}: {'passed' if graph.ok else 'FAILED'} "
                 f"({len(graph.artifacts)} artifacts)")
    return "\n".join(lines)


def _flatten(value, prefix: str = ""):
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, json.dumps(value, default=str)


# ---- command line ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from . import audit_queries

    parser = argparse.ArgumentParser(
        prog="python -m tessy_dagster.audit",
        description="Walk from an artifact back to every input, recomputing each digest from disk; exit 0 when "
                    "everything matches, 1 on a changed file, a stale or missing input or a failed verdict, "
                    "2 on a usage error. With --query, run a named DuckDB query over the lineage instead.")
    parser.add_argument("asset", nargs="?", help="the artifact to start from (optional with --query: all of home)")
    parser.add_argument("partition", nargs="?", help="its partition (an arm, or a scored model)")
    parser.add_argument("--home", default=None, help="the artifact store (default: TESSY_HOME, else .tessy)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the tree or table")
    parser.add_argument("--settings", action="store_true", help="print every artifact's settings in the tree")
    parser.add_argument("--query", metavar="NAME", help="run a named query ('list' names them)")
    parser.add_argument("--digest", help="rows_by_boundary_model: the boundary model's digest (or a prefix)")
    args = parser.parse_args(argv)
    home = Path(args.home).resolve() if args.home else tessy_home()
    try:
        if args.query:
            return audit_queries.run_from_command_line(home, args)
        if not args.asset:
            raise AuditUsageError("name the artifact to audit: ASSET [PARTITION] (or --query NAME)")
        graph = audit(home, args.asset, args.partition)
    except AuditUsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps(graph.to_json(), indent=2, default=str) if args.json else render_tree(graph, args.settings))
    return graph.exit_code


if __name__ == "__main__":
    # run the imported module's main, so that its errors are the classes audit_queries raises
    from tessy_dagster.audit import main as module_main

    sys.exit(module_main())
