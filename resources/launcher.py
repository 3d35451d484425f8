"""The step launcher: runs a heavy step's entrypoint and collects what it reports through Dagster Pipes.

`local` (the embedded default) runs `python -m tessy_dagster.steps.NAME` as a subprocess with Pipes'
subprocess client. A `kubernetes` mode (the same entrypoint in a GPU Job) is not built yet; see the README.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Literal

from dagster import ConfigurableResource, MaterializeResult, PipesSubprocessClient


class StepLauncher(ConfigurableResource):
    mode: Literal["local"] = "local"
    python: str = sys.executable

    def run(self, context, step: str, params: dict) -> MaterializeResult:
        command = [self.python, "-m", f"tessy_dagster.steps.{step}", "--params", json.dumps(params)]
        context.log.info(f"launching step {step} ({self.mode}): {' '.join(command[:3])} ...")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
        client = PipesSubprocessClient(env=env, cwd=os.getcwd())
        return client.run(command=command, context=context).get_materialize_result()
