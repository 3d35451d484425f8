"""Re-run one arm's SFT with other epochs / learning rates and score each result; writes JSON.

Not a test: a measurement on the artifacts of a `make demo` run (TESSY_HOME, default .tessy/).

    .venv/bin/python benchmarks/sft_sweep.py --arm tessy --runs 6:1e-3 10:2e-3 --out benchmarks/results/sft_sweep_tessy.json
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from tessy_dagster.evaluate.run import score_model
from tessy_dagster.settings import SftSettings, load_settings
from tessy_dagster.storage import artifact_dir, tessy_home
from tessy_dagster.train.student import finetune_student


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arm", default="tessy")
    parser.add_argument("--runs", nargs="+", default=["6:1e-3", "10:2e-3"], help="EPOCHS:LR pairs")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    home = tessy_home()
    results = []
    for run in args.runs:
        epochs, lr = run.split(":")
        settings = SftSettings(epochs=int(epochs), learning_rate=float(lr))
        with tempfile.TemporaryDirectory() as out:
            start = time.monotonic()
            train = finetune_student(student_dir=artifact_dir(home, "student_model"),
                                     corpus_path=artifact_dir(home, "sft_corpus", args.arm) / "corpus.parquet",
                                     settings=settings, out_dir=Path(out), progress=lambda m: None)
            scores = score_model(model_dir=out, benchmark_path=artifact_dir(home, "benchmark") / "problems.parquet",
                                 settings=load_settings("toy").evaluate, out_dir=Path(out), progress=lambda m: None)
        results.append({"arm": args.arm, "epochs": int(epochs), "learning_rate": float(lr), "train": train,
                        "scores": scores, "seconds": round(time.monotonic() - start, 1)})
        print(json.dumps(results[-1]))
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
