"""The settings resource: which profile, which overrides file, which storage root.

It is also where the input wiring fills in what a source implies: under `inputs.source: toy` the style
lexicons (and the lexicon annotator's phrases) are the toy world's (the only place outside the toy world that reads them), and a model served
elsewhere (`inputs.*_model.endpoint`) becomes the `openai` backend's URL for its role wherever that backend
is chosen.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource

from tessy_dagster.settings import GenerationSettings, TessySettings, load_settings
from tessy_dagster.storage import artifact_dir


def _with_endpoints(generation: GenerationSettings, settings: TessySettings) -> GenerationSettings:
    """The role URLs and served names of models served elsewhere, where the settings name none."""
    if generation.backend != "openai":
        return generation
    urls, names = dict(generation.urls), dict(generation.served_names)
    for role in ("teacher", "student"):
        model = getattr(settings.inputs, f"{role}_model")
        if settings.inputs.source == "files" and model.endpoint:
            urls.setdefault(role, model.endpoint)
            if model.served_name:
                names.setdefault(role, model.served_name)
    return generation.model_copy(update={"urls": urls, "served_names": names})


def resolve_settings(settings: TessySettings) -> TessySettings:
    """The settings with what the input source implies filled in (see the module docstring)."""
    update = {}
    boundary = {"trace_generation": _with_endpoints(settings.boundary.trace_generation, settings)}
    if settings.inputs.source == "toy":
        from tessy_dagster.toyworld.tasks import STUDENT_LEXICON, STYLE_PHRASES, TEACHER_LEXICON

        if settings.lexicons is None:
            update["lexicons"] = {"teacher": TEACHER_LEXICON, "student": STUDENT_LEXICON}
        if settings.boundary.lexicon is None:
            boundary["lexicon"] = STYLE_PHRASES  # the lexicon annotator marks the markers' parts
    update["cooperate"] = settings.cooperate.model_copy(
        update={"generation": _with_endpoints(settings.cooperate.generation, settings)})
    update["boundary"] = settings.boundary.model_copy(update=boundary)
    update["evaluate"] = settings.evaluate.model_copy(
        update={"generation": _with_endpoints(settings.evaluate.generation, settings)})
    data = settings.model_dump()
    data.update({k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in update.items()})
    return TessySettings.model_validate(data)


class TessyConfig(ConfigurableResource):
    """`profile` is `toy` (the demo) or `micro` (tests); `overrides_file` is a JSON file of overrides;
    `home` is the artifact root (a shared volume in production)."""

    profile: str = "toy"
    overrides_file: str = ""
    home: str = ".tessy"

    @cached_property
    def settings(self) -> TessySettings:
        return resolve_settings(load_settings(self.profile, self.overrides_file or None))

    def root(self) -> Path:
        return Path(self.home).resolve()

    def dir(self, asset: str, partition: str | None = None) -> Path:
        return artifact_dir(self.root(), asset, partition)
