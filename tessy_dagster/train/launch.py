"""SFT as several processes on one node: `launch` runs `student.train_student` under `torchrun` (DDP: NCCL on
GPUs, gloo on CPU) or `accelerate launch` with the repo's FSDP config, one process per device, each running
`main` below (`python -m tessy_dagster.train.launch --params @file`). Rank 0 writes the artifact; its progress
lines are forwarded to the caller and its metrics read back from a file.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from ..settings import SftSettings
from .nodes import MASTER_ADDR_ENV, MASTER_PORT_ENV, NODE_RANK_ENV, NUM_NODES_ENV, node_rank
from .student import runtime_choices, train_student

FSDP_CONFIG = Path(__file__).with_name("accelerate_fsdp.yaml")
PROGRESS_PREFIX = "TESSY-PROGRESS "  # lines of a launched rank 0 that are progress, forwarded to the caller


def launch(*, student_dir, corpus_path, settings: SftSettings, out_dir, arm, progress) -> dict:
    """Run `train_student` as `num_processes` processes under the configured launcher; rank 0's progress lines
    are forwarded, its metrics read back from a file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    params_file, result_file = out_dir / ".launch.json", out_dir / ".launch-result.json"
    command = launch_command(settings, params_file)  # a launch that cannot run fails before anything is written
    params_file.write_text(json.dumps({"student_dir": str(student_dir), "corpus_path": str(corpus_path),
                                       "settings": settings.model_dump(), "out_dir": str(out_dir), "arm": arm,
                                       "result": str(result_file)}))
    progress(f"launching {settings.num_processes} training processes: {' '.join(command)}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        for line in proc.stdout:
            if line.startswith(PROGRESS_PREFIX):
                progress(line[len(PROGRESS_PREFIX):].rstrip("\n"))
            else:
                sys.stderr.write(line)
        code = proc.wait()
    if code == 0 and node_rank() > 0:
        return {}  # a worker node: node 0 writes the artifact and reports it
    if code != 0 or not result_file.exists():
        raise RuntimeError(f"the {settings.launcher} launch of SFT exited with code {code}; its ranks' errors are "
                           f"above. Command: {' '.join(command)}")
    metrics = json.loads(result_file.read_text())
    params_file.unlink()
    result_file.unlink()
    return metrics


def launch_command(settings: SftSettings, params_file: Path) -> list[str]:
    """`torchrun` (DDP: NCCL on GPUs, gloo on CPU) or `accelerate launch` with the FSDP config, `num_processes`
    processes on this node, each running `main` below. The bf16 setting overrides the config's mixed precision
    (accelerate's environment would otherwise win over the Trainer's `bf16`)."""
    entry = ["-m", "tessy_dagster.train.launch", "--params", f"@{params_file}"]
    if settings.num_nodes > 1:
        return _multi_node_command(settings, entry)
    if settings.launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={settings.num_processes}", *entry]
    config = Path(settings.accelerate_config or FSDP_CONFIG)
    _check_fsdp_device(config)
    precision = "bf16" if runtime_choices(settings)["bf16"] else "no"
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
            "--num_processes", str(settings.num_processes), "--mixed_precision", precision, *entry]


def _multi_node_command(settings: SftSettings, entry: list[str]) -> list[str]:
    """torchrun on one node of `num_nodes`, meeting the others at node 0 (static rendezvous, so global rank 0,
    which writes the artifact, is on node 0). The kubernetes launcher's Indexed Job sets the variables."""
    missing = [v for v in (NODE_RANK_ENV, NUM_NODES_ENV, MASTER_ADDR_ENV, MASTER_PORT_ENV) if v not in os.environ]
    if missing:
        raise ValueError(f"sft.num_nodes is {settings.num_nodes}: a multi-node SFT runs as an Indexed Job under the "
                         f"kubernetes launcher (launcher.mode), which sets {', '.join(missing)}; on one machine set "
                         f"num_nodes to 1")
    if int(os.environ[NUM_NODES_ENV]) != settings.num_nodes:
        raise ValueError(f"sft.num_nodes is {settings.num_nodes} and the Job has {os.environ[NUM_NODES_ENV]} pods")
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={settings.num_nodes}",
            f"--node_rank={node_rank()}", f"--nproc_per_node={settings.num_processes}",
            f"--master_addr={os.environ[MASTER_ADDR_ENV]}", f"--master_port={os.environ[MASTER_PORT_ENV]}", *entry]


def _check_fsdp_device(config: Path) -> None:
    """FSDP runs on CUDA devices only here: without them the Trainer runs on the CPU (`use_cpu`), where
    accelerate turns the launch into plain MULTI_CPU data parallelism and ignores the FSDP section, silently.
    Refuse instead, and name the launcher that does run on CPU."""
    import torch
    import yaml

    try:
        distributed = (yaml.safe_load(config.read_text()) or {}).get("distributed_type")
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"sft.accelerate_config {config}: cannot read it ({err})") from err
    if distributed == "FSDP" and not torch.cuda.is_available():
        raise ValueError(f"sft.accelerate_config {config} asks for FSDP, which needs CUDA devices and this machine "
                         f"has none; on CPU set sft.launcher to 'torchrun' (DDP over gloo) or num_processes to 1")


def main(argv: list[str] | None = None) -> None:
    """One rank of a launched SFT: `python -m tessy_dagster.train.launch --params @file.json`."""
    parser = argparse.ArgumentParser(description="One process of a launched student SFT.")
    parser.add_argument("--params", required=True, help="@path to the JSON written by the launching step")
    args = parser.parse_args(argv)
    params = json.loads(Path(args.params.lstrip("@")).read_text())

    def progress(message: str) -> None:
        print(PROGRESS_PREFIX + message, flush=True)

    metrics = train_student(student_dir=params["student_dir"], corpus_path=params["corpus_path"],
                            settings=SftSettings.model_validate(params["settings"]), out_dir=params["out_dir"],
                            arm=params.get("arm"), progress=progress)
    if metrics:  # rank 0
        Path(params["result"]).write_text(json.dumps(metrics))


if __name__ == "__main__":
    main()
