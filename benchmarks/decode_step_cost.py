"""What one decode step and one prefill cost for the teacher and the student models; writes JSON.

Not a test: a measurement on the models of a `make demo` run (TESSY_HOME, default .tessy/), to tell how much
a student token costs against a teacher token on this machine. Each forward reads a cache of `--context`
random tokens per row; times are medians over `--steps` steps.

    .venv/bin/python benchmarks/decode_step_cost.py --out benchmarks/results/decode_step_cost_toy.json
"""

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

from tessy_dagster.storage import artifact_dir, tessy_home


def measure(model, batch: int, context: int, steps: int) -> dict:
    import torch

    ids = torch.randint(5, model.config.vocab_size, (batch, context))
    decode, prefill = [], []
    with torch.no_grad():
        for _ in range(3):
            start = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            prefill.append(time.perf_counter() - start)
        cache = out.past_key_values
        for _ in range(steps):
            start = time.perf_counter()
            model(input_ids=ids[:, :1], past_key_values=cache, use_cache=True)
            decode.append(time.perf_counter() - start)
    return {"batch": batch, "decode_step_ms": round(statistics.median(decode) * 1000, 2),
            f"prefill_{context}_tokens_ms": round(statistics.median(prefill) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--context", type=int, default=80)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch
    from transformers import AutoModelForCausalLM

    report = {"context_tokens": args.context, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
              "machine": platform.machine(), "models": {}}
    for role in ("teacher", "student"):
        folder = artifact_dir(tessy_home(), f"{role}_model")
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
        c = model.config
        report["models"][role] = {
            "architecture": c.model_type, "layers": c.num_hidden_layers, "hidden": c.hidden_size,
            "parameters": sum(p.numel() for p in model.parameters()),
            "by_batch": [measure(model, b, args.context, args.steps) for b in (8, 32, 64, 128)],
        }
        print(json.dumps({role: report["models"][role]}), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
