"""The step launcher: runs a heavy step's entrypoint and collects what it reports through Dagster Pipes.

`local` (the embedded default) runs `python -m tessy_dagster.steps.NAME` as a subprocess with Pipes'
subprocess client. `kubernetes` runs the same command in a `batch/v1` Job (resources/k8s_launch.py), with
the step's image, GPUs, volumes and queue from `launcher.kubernetes` in the settings.
"""

from __future__ import annotations

import json
import os
import sys

from dagster import ConfigurableResource, MaterializeResult, PipesSubprocessClient

from tessy_dagster.settings import LauncherSettings


class StepLauncher(ConfigurableResource):
    """`python` is the interpreter of `local` steps (inside a Job, the image's `python`)."""

    python: str = sys.executable

    def run(self, context, step: str, params: dict, settings: LauncherSettings, *, home: str,
            partition: str | None = None) -> MaterializeResult:
        if settings.mode == "kubernetes":
            from .k8s_job import gpus_needed
            from .k8s_launch import run_in_job

            k8s = settings.kubernetes
            job = k8s.job(step)
            needed = gpus_needed(params["settings"])
            gpus = needed if job.gpus is None else job.gpus
            if gpus < needed:
                raise ValueError(f"launcher.kubernetes.steps.{step}.gpus is {job.gpus}, and the step's settings "
                                 f"need {needed} (vLLM tensor_parallel_size or SFT num_processes)")
            nodes = params["settings"].get("num_nodes", 1) if step == "student_checkpoint" else 1
            command = ["python", "-m", f"tessy_dagster.steps.{step}", "--params", json.dumps(params)]
            return run_in_job(context, step=step, command=command, settings=k8s, home=home, gpus=gpus, nodes=nodes,
                              partition=partition)
        command = [self.python, "-m", f"tessy_dagster.steps.{step}", "--params", json.dumps(params)]
        context.log.info(f"launching step {step} (local): {' '.join(command[:3])} ...")
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
        client = PipesSubprocessClient(env=env, cwd=os.getcwd())
        return client.run(command=command, context=context).get_materialize_result()
