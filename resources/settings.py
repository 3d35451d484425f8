"""The settings resource: which profile, which overrides file, which storage root."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from dagster import ConfigurableResource

from tessy_dagster.settings import TessySettings, load_settings
from tessy_dagster.storage import artifact_dir


class TessyConfig(ConfigurableResource):
    """`profile` is `toy` (the demo) or `micro` (tests); `overrides_file` is a JSON file of overrides;
    `home` is the artifact root (a shared volume in production)."""

    profile: str = "toy"
    overrides_file: str = ""
    home: str = ".tessy"

    @cached_property
    def settings(self) -> TessySettings:
        return load_settings(self.profile, self.overrides_file or None)

    def dir(self, asset: str, partition: str | None = None) -> Path:
        return artifact_dir(Path(self.home).resolve(), asset, partition)
