"""Boundary-model inference throughput (classifier tokens per second) at batch sizes 1 to 64; writes JSON.

Not a test: a measurement on the artifacts of a `make demo` run (TESSY_HOME, default .tessy/). Requests
are made the way the cooperative engine makes them: a held window is split after a random word into a
context and a chunk of about one round's length (teacher 10 / student 5 tokens of the cooperate settings,
taken as words here), and each request asks the predictor of the window's source model for its cut.

    .venv/bin/python benchmarks/boundary_throughput.py --out benchmarks/results/boundary_throughput_toy.json
"""

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

from tessy_dagster.boundary.model import BoundaryPredictor
from tessy_dagster.settings import load_settings
from tessy_dagster.storage import artifact_dir, read_table, tessy_home


def requests_from_windows(rows: list[dict], n: int, chunk_words: dict, seed: int) -> list[tuple[str, str, str]]:
    rng = random.Random(seed)
    out = []
    for row in rng.sample(rows, min(n, len(rows))):
        words = row["text"].split(" ")
        k = chunk_words[row["source_model"]]
        split = rng.randrange(1, max(2, len(words) - k))
        out.append((" ".join(words[:split]) + " ", " ".join(words[split:split + k]), row["source_model"]))
    return out


def classifier_tokens(predictor: BoundaryPredictor, requests) -> int:
    """Tokens the classifier runs over: each request's context tail plus its chunk."""
    total = 0
    for context, chunk, role in requests:
        tokenizer, _ = predictor.predictors[role]
        n_context = len(tokenizer(context, add_special_tokens=False)["input_ids"])
        n_all = len(tokenizer(context + chunk, add_special_tokens=False)["input_ids"])
        total += min(n_context, predictor.context_tokens) + n_all - n_context
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("TESSY_PROFILE", "toy"))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--requests", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    settings = load_settings(args.profile)
    home = tessy_home()
    rows = read_table(artifact_dir(home, "boundary_dataset") / "windows.parquet").to_pylist()
    chunk_words = {"teacher": settings.cooperate.teacher_chunk_tokens, "student": settings.cooperate.student_chunk_tokens}
    requests = requests_from_windows(rows, args.requests, chunk_words, seed=0)
    predictor = BoundaryPredictor(artifact_dir(home, "boundary_model"), context_tokens=settings.boundary.context_tokens)
    tokens = classifier_tokens(predictor, requests)
    contexts, chunks, roles = (list(column) for column in zip(*requests))
    results = []
    for batch_size in args.batch_sizes:
        predictor.batch_size = batch_size
        predictor.cuts(contexts[:batch_size], chunks[:batch_size], roles[:batch_size])  # warm-up
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictor.cuts(contexts, chunks, roles)
            seconds.append(time.perf_counter() - start)
        median = statistics.median(seconds)
        results.append({"batch_size": batch_size, "seconds_median": round(median, 4),
                        "tokens_per_second": round(tokens / median, 1),
                        "requests_per_second": round(len(requests) / median, 1)})
        print(json.dumps(results[-1]), flush=True)
    report = {
        "what": "BoundaryPredictor.cuts over engine-like requests (context tail + one chunk), both predictors",
        "profile": args.profile, "requests": len(requests), "classifier_tokens": tokens,
        "context_tokens": settings.boundary.context_tokens, "repeats": args.repeats,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
