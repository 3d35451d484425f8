"""Where a multi-node SFT's pods find each other: the variables the kubernetes launcher's Indexed Job sets on
each pod (resources/k8s_job.py) and the training launch reads (train/launch.py, steps/runner.py). A module of
its own so the launcher reads them without importing the trainer."""

import os

NODE_RANK_ENV = "TESSY_NODE_RANK"  # the pod's completion index; node 0 writes the artifact and reports it
NUM_NODES_ENV = "TESSY_NUM_NODES"
MASTER_ADDR_ENV = "TESSY_MASTER_ADDR"  # pod 0's stable name through the headless Service
MASTER_PORT_ENV = "TESSY_MASTER_PORT"


def node_rank() -> int:
    """This pod's index in a multi-node SFT (0 outside one)."""
    return int(os.environ.get(NODE_RANK_ENV, "0"))
