"""Check, before any run, that every path a settings file names is there and is what it should be.

`python -m tessy_dagster.inputs.preflight --settings examples/production.json` lists each path with the
setting that names it and what is wrong with it, and exits non-zero if anything is. The assets make the
same checks when they run (each input asset fails naming its path); this says it all at once, before a
cluster spends an hour on the steps that come first.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from ..settings import TessySettings, load_settings
from .models import inspect_model_folder


@dataclass(frozen=True)
class PathCheck:
    setting: str  # e.g. inputs.teacher_model.path
    path: str
    problem: str | None  # None: present and usable

    def line(self) -> str:
        return f"{'ok     ' if self.problem is None else 'MISSING' if 'does not exist' in self.problem else 'BAD    '} " \
               f"{self.setting} = {self.path}" + ("" if self.problem is None else f"\n        {self.problem}")


def _model(setting: str, path: str, needs_weights: bool) -> PathCheck:
    if not Path(path).exists():
        return PathCheck(setting, path, f"{path} does not exist: point {setting} at a model folder")
    try:
        inspect_model_folder(path, needs_weights=needs_weights, needs_thinking=setting.startswith("inputs."))
    except (ValueError, FileNotFoundError) as err:
        return PathCheck(setting, path, str(err))
    return PathCheck(setting, path, None)


def _plain(setting: str, path: str, kind: str) -> PathCheck:
    p = Path(path)
    if not p.exists():
        return PathCheck(setting, path, f"{path} does not exist: point {setting} at the {kind}")
    return PathCheck(setting, path, None)


def check_paths(settings: TessySettings) -> list[PathCheck]:
    """Every path the settings name, checked; the toy source names none of its own."""
    checks = []
    inputs = settings.inputs
    if inputs.source == "files":
        checks.append(_plain("inputs.prompts.path", inputs.prompts.path, "prompts file (JSONL, Parquet or a saved "
                                                                          "dataset folder)"))
        for role in ("teacher", "student"):
            model = getattr(inputs, f"{role}_model")
            checks.append(_model(f"inputs.{role}_model.path", model.path, needs_weights=model.endpoint is None))
    for i, suite in enumerate(inputs.benchmark):
        if suite.path:
            checks.append(_plain(f"inputs.benchmark[{i}].path", suite.path, f"{suite.kind} suite's local files"))
    b = settings.boundary
    if b.annotator == "llm":
        checks.append(_model("boundary.annotator_model", b.annotator_model,
                             needs_weights=b.annotator_generation.backend != "openai"))
    if b.base_model:
        checks.append(_model("boundary.base_model", b.base_model, needs_weights=True))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True, help="a JSON overrides file, e.g. examples/production.json")
    parser.add_argument("--profile", default="toy")
    args = parser.parse_args(argv)
    checks = check_paths(load_settings(args.profile, args.settings))
    for check in checks:
        print(check.line())
    bad = [c for c in checks if c.problem]
    print(f"{len(checks)} paths checked, {len(bad)} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
