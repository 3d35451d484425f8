"""The toy student's SFT throughput and peak memory: TRL's SFTTrainer (the production path) against the previous
hand-written loop, on the same corpus, epochs, batch, learning rate and max tokens; writes JSON.

Not a test: a measurement. Each path runs in its own process, so the peak resident memory (ru_maxrss) is that
path's alone; tokens are the real (non-pad) tokens trained on, seconds the training call's wall clock (TRL's
includes its per-epoch checkpoint saves, which are part of the path). By default the corpus is the toy world's
teacher-style records (the teacher_only arm's kind of trace) and the student a toy student built here on a short
budget (its quality does not matter for throughput); or pass an existing student folder and corpus.parquet.
`trl_padding_free` is TRL's padding-free batching on sdpa, where transformers keeps records apart with a
block-diagonal mask over the whole flattened batch: it shows why `batching: auto` pads on CPU (and on GPUs
without flash attention). Its losses equal `trl_padded`'s step for step (same batches, no cross-talk).

    .venv/bin/python benchmarks/sft_trl_vs_loop.py --out benchmarks/results/sft_trl_vs_loop.json
    .venv/bin/python benchmarks/sft_trl_vs_loop.py --student .tessy/student_model \\
        --corpus .tessy/sft_corpus/tessy/corpus.parquet --out /tmp/sft_trl_vs_loop.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATHS = ("loop", "trl_padded", "trl_padding_free")


def build_inputs(root: Path, n_records: int, seed: int) -> tuple[Path, Path]:
    """A toy student (tokenizer and model, a few training steps) and a corpus.parquet of teacher-style records."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tessy_dagster.settings import ToyWorldSettings
    from tessy_dagster.toyworld.models import build_toy_model, training_records

    world = ToyWorldSettings(seed=seed, n_train_problems=n_records, train_seconds=20.0, train_steps=20)
    student = root / "student"
    student.mkdir()
    build_toy_model("student", world, student, progress=lambda m: None)
    rows = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]}
            for p, a in training_records("teacher", world)]
    corpus = root / "corpus.parquet"
    pq.write_table(pa.Table.from_pylist(rows), corpus)
    return student, corpus


def run_path(path: str, student: str, corpus: str, args) -> dict:
    """One path, in this process (the child)."""
    import torch

    torch.set_num_threads(args.threads)
    from tessy_dagster.corpus.filters import load_chat_records

    records = load_chat_records(corpus)
    if path == "loop":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from tessy_dagster.train.sft import encode_chats, train_causal_lm

        tokenizer = AutoTokenizer.from_pretrained(student)
        model = AutoModelForCausalLM.from_pretrained(student, dtype=torch.float32)
        examples = encode_chats(tokenizer, records, args.max_tokens)
        report = train_causal_lm(model, examples, pad_id=tokenizer.pad_token_id, epochs=args.epochs,
                                 max_seconds=1e9, batch_size=args.batch_size, learning_rate=args.learning_rate,
                                 seed=0, progress=lambda m: None)
        result = {"steps": report.steps, "tokens": report.tokens_seen, "seconds": report.seconds,
                  "first_loss": report.first_loss, "final_loss": report.final_loss}
    else:
        from tessy_dagster.settings import SftSettings
        from tessy_dagster.train.student import finetune_student

        settings = SftSettings(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                               max_tokens=args.max_tokens, max_seconds=1e9, attn_implementation="sdpa",
                               batching="padded" if path == "trl_padded" else "padding_free")
        with tempfile.TemporaryDirectory() as out:
            metrics = finetune_student(student_dir=student, corpus_path=corpus, settings=settings, out_dir=out,
                                       progress=lambda m: None)
        result = {"steps": metrics["train_steps"], "tokens": metrics["train_tokens"],
                  "seconds": metrics["train_seconds"], "first_loss": metrics["first_loss"],
                  "final_loss": metrics["final_loss"]}
    result["tokens_per_second"] = round(result["tokens"] / result["seconds"], 1)
    result["seconds"] = round(result["seconds"], 2)
    result["first_loss"], result["final_loss"] = round(result["first_loss"], 4), round(result["final_loss"], 4)
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["records"] = len(records)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", help="a student save_pretrained folder (default: build a toy student)")
    parser.add_argument("--corpus", help="a corpus.parquet (default: toy teacher-style records)")
    parser.add_argument("--records", type=int, default=600, help="toy records when no corpus is given")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--max-tokens", type=int, default=384)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per path (paths run one at a time)")
    parser.add_argument("--paths", nargs="+", default=list(PATHS), choices=PATHS)
    parser.add_argument("--out", default="benchmarks/results/sft_trl_vs_loop.json")
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.child:
        print(json.dumps(run_path(args.child, args.student, args.corpus, args)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.student and args.corpus:
            student, corpus = Path(args.student), Path(args.corpus)
        else:
            student, corpus = build_inputs(Path(tmp), args.records, seed=0)
        common = ["--student", str(student), "--corpus", str(corpus), "--epochs", str(args.epochs),
                  "--batch-size", str(args.batch_size), "--learning-rate", str(args.learning_rate),
                  "--max-tokens", str(args.max_tokens), "--threads", str(args.threads)]
        results = {}
        for path in args.paths:
            start = time.monotonic()
            done = subprocess.run([sys.executable, __file__, "--child", path, *common], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0:
                sys.stderr.write(done.stderr)
                raise SystemExit(f"path {path} failed")
            results[path] = {**json.loads(done.stdout.strip().splitlines()[-1]),
                             "process_seconds": round(time.monotonic() - start, 1)}
            print(path, json.dumps(results[path]), flush=True)
    loop = results.get("loop")
    summary = {
        "benchmark": "sft_trl_vs_loop",
        "what": "toy student SFT: real (non-pad) tokens trained per second and peak RSS per path, one process each",
        "command": " ".join(["benchmarks/sft_trl_vs_loop.py", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "threads_per_path": args.threads, "python": platform.python_version(),
                    "load_average_1m_at_end": round(os.getloadavg()[0], 2)},  # shared cores: figures scale with it
        "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                     "max_tokens": args.max_tokens, "corpus": "given" if args.corpus else
                     f"toy teacher-style records ({args.records})"},
        "paths": results,
        "trl_vs_loop_tokens_per_second": {p: round(r["tokens_per_second"] / loop["tokens_per_second"], 3)
                                          for p, r in results.items() if loop and p != "loop"},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
