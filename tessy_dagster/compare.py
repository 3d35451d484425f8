"""Compare the scored models: every arm and reference model per benchmark suite, and the paper's question
(does tessy beat teacher_only and the base student, by how much, with what spread) answered in numbers.

Everything is computed from each model's `scores.parquet` (one row per sampled answer), so the spread is
known, not only the mean:
- pass@1 is the mean over problems of each problem's share of passing samples (as `summary.json` has it);
- its 95% CI is a bootstrap over problems: problems are resampled with replacement, each keeping all its
  samples, and the interval is the 2.5..97.5% percentiles of the resampled means. It covers which problems
  and which samples were drawn, works with one sample per problem, and is wide when there are few problems
  (fewer than two: no interval, said so);
- `pass@1_sample_std` is the spread over samples: pass@1 of each sample index alone, their standard deviation
  (None with one sample per problem);
- a difference between two arms is paired: every arm answers the same problems, so the bootstrap resamples
  problems and takes both arms' rates of the same problem. It is significant when its interval excludes 0.

`write_comparison` writes comparison.parquet (one row per model x suite x bucket), corpus_style.parquet (the
model-based style metrics of each arm's SFT corpus) and comparison.md (the tables and the verdict).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from .corpus.filters import DRIFT_FILE
from .evaluate.benchmarks.passk import pass_at_k
from .evaluate.run import SCORES_FILE
from .settings import REFERENCE_MODELS
from .storage import MANIFEST, read_table, write_table

COMPARISON_FILE = "comparison.parquet"
CORPUS_STYLE_FILE = "corpus_style.parquet"
MARKDOWN_FILE = "comparison.md"
BOOTSTRAP = {"resamples": 10_000, "level": 0.95, "seed": 0}
# (arm, what it is compared with): the paper's question
COMPARISONS = (("tessy", "teacher_only"), ("tessy", "base"))
SCORE_COLUMNS = ("problem_id", "suite", "difficulty", "release_date", "sample", "passed", "thinking_tokens",
                 "truncated", "status", "teacher_marker_rate", "student_marker_rate")
# The per-trace drift metrics of a corpus summarised per arm (means over the traces where they exist)
CORPUS_STYLE_COLUMNS = ("teacher_token_share", "style_rate", "style_rate_student", "style_rate_teacher",
                        "similarity", "nll_thinking", "nll_style", "nll_capability", "nll_answer",
                        "teacher_marker_rate", "student_marker_rate")
BUCKETS = (("difficulty", "difficulty"), ("release_month", "month"))  # (bucket kind, per-problem column)


@dataclass
class Comparison:
    rows: list[dict]  # one per model x suite x bucket (bucket_kind "suite" is the whole suite)
    verdicts: list[dict]  # one per suite x comparison
    corpus_style: list[dict]  # one per arm with a corpus
    scored: list[str]
    missing: list[str]  # score partitions with no artifact
    ks: list[int]
    warnings: list[str] = field(default_factory=list)


# --- reading ------------------------------------------------------------------------------------------------

def read_scores(folder) -> pd.DataFrame:
    """One model's scored samples, with the release month of each problem."""
    path = Path(folder) / SCORES_FILE
    table = read_table(path)
    absent = [c for c in SCORE_COLUMNS if c not in table.column_names]
    if absent:
        raise ValueError(f"{path}: columns {absent} are missing; rescore this model (benchmark_scores)")
    frame = table.select(list(SCORE_COLUMNS)).to_pandas()
    if frame.empty:
        raise ValueError(f"{path}: no scored samples")
    frame["passed"] = frame["passed"].fillna(False).astype(bool)
    frame["truncated"] = frame["truncated"].fillna(False).astype(bool)
    frame["thinking_tokens"] = frame["thinking_tokens"].fillna(0).astype(float)
    frame["month"] = frame["release_date"].fillna("").str[:7]
    frame["difficulty"] = frame["difficulty"].fillna("")
    duplicated = frame.duplicated(["suite", "problem_id", "sample"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        raise ValueError(f"{path}: suite {row['suite']} problem {row['problem_id']} sample {row['sample']} "
                         f"appears twice")
    return frame


def scored_ks(folder) -> list[int]:
    """The k values the model was scored for (its manifest's `pass_at_k`), 1 always."""
    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    return sorted({1, *(int(k) for k in manifest["settings"].get("pass_at_k", (1,)))})


def benchmark_digest(folder) -> str | None:
    manifest = json.loads((Path(folder) / MANIFEST).read_text())
    return (manifest["inputs"].get("benchmark") or {}).get("digest")


# --- statistics ---------------------------------------------------------------------------------------------

def bootstrap_mean_ci(values, *, resamples: int = BOOTSTRAP["resamples"], level: float = BOOTSTRAP["level"],
                      seed: int = BOOTSTRAP["seed"]) -> tuple[float | None, float | None]:
    """Percentile bootstrap interval of the mean of `values` (one value per problem); (None, None) for fewer
    than two values, whose spread cannot be estimated."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return None, None
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    block = max(1, 2_000_000 // values.size)  # bounded memory for large suites
    for start in range(0, resamples, block):
        n = min(block, resamples - start)
        means[start:start + n] = values[rng.integers(0, values.size, size=(n, values.size))].mean(axis=1)
    tail = (1.0 - level) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def per_problem(frame: pd.DataFrame) -> pd.DataFrame:
    """Per problem: its samples, passes and pass rate (the share of its samples that passed)."""
    grouped = frame.groupby("problem_id", sort=True)
    out = grouped.agg(samples=("passed", "size"), passes=("passed", "sum"))
    out["rate"] = out["passes"] / out["samples"]
    return out


def sample_std(frame) -> float | None:
    """Standard deviation over sample indices of pass@1 computed from that sample index alone."""
    per_sample = frame.groupby("sample")["passed"].mean()
    return float(per_sample.std(ddof=1)) if len(per_sample) > 1 else None


def score_row(frame, ks: list[int]) -> dict:
    """pass@1 with its interval and sample spread, pass@k, thinking length, truncation and marker rates of
    one group of samples (a suite or a bucket)."""
    problems = per_problem(frame)
    low, high = bootstrap_mean_ci(problems["rate"].to_numpy())
    row = {"n_problems": len(problems), "n_samples": len(frame), "pass@1": float(problems["rate"].mean()),
           "pass@1_ci_low": low, "pass@1_ci_high": high, "pass@1_sample_std": sample_std(frame)}
    for k in ks:
        if k == 1:
            continue
        enough = bool((problems["samples"] >= k).all())
        row[f"pass@{k}"] = float(np.mean([pass_at_k(int(n), int(c), k) for n, c in
                                          zip(problems["samples"], problems["passes"])])) if enough else None
    rated = frame["teacher_marker_rate"].notna()
    row.update({
        "mean_thinking_tokens": float(frame["thinking_tokens"].mean()),
        "truncation_rate": float(frame["truncated"].mean()),
        "prompt_too_long": int((frame["status"] == "prompt_too_long").sum()),
        "no_answer": int((frame["status"] == "no_answer").sum()),
        "teacher_marker_rate": float(frame.loc[rated, "teacher_marker_rate"].mean()) if rated.any() else None,
        "student_marker_rate": float(frame.loc[rated, "student_marker_rate"].mean()) if rated.any() else None,
    })
    return row


def model_rows(model: str, frame, ks: list[int]) -> list[dict]:
    """The model's rows: each suite whole, then by difficulty and by release month where the suite has them."""
    role = "reference" if model in REFERENCE_MODELS else "arm"
    rows = []
    for suite, items in frame.groupby("suite", sort=True):
        rows.append({"model": model, "role": role, "suite": suite, "bucket_kind": "suite", "bucket": "",
                     **score_row(items, ks)})
        for kind, column in BUCKETS:
            for bucket, part in items[items[column] != ""].groupby(column, sort=True):
                rows.append({"model": model, "role": role, "suite": suite, "bucket_kind": kind, "bucket": bucket,
                             **score_row(part, ks)})
    return rows


def paired_difference(arm_frame, other_frame) -> dict:
    """arm - other in pass@1 over the problems both answered, with the paired bootstrap interval."""
    a, b = per_problem(arm_frame)["rate"], per_problem(other_frame)["rate"]
    common = a.index.intersection(b.index)
    diffs = (a[common] - b[common]).to_numpy()
    low, high = bootstrap_mean_ci(diffs)
    diff = float(diffs.mean()) if diffs.size else None
    return {"n_paired": int(common.size), "n_unpaired": int(a.index.symmetric_difference(b.index).size),
            "arm_pass@1": float(a[common].mean()) if diffs.size else None,
            "other_pass@1": float(b[common].mean()) if diffs.size else None,
            "diff": diff, "ci_low": low, "ci_high": high,
            "significant": None if low is None else bool(low > 0 or high < 0)}


def _signed(value: float) -> str:
    return f"{value:+.3f}".replace("-", "\u2212")


def _problems(n: int) -> str:
    return f"{n} problem" + ("" if n == 1 else "s")


def verdict_sentence(arm: str, other: str, d: dict) -> str:
    """"tessy beats teacher_only by +0.042 pass@1 (95% CI −0.021..+0.104, 164 problems): not significant"."""
    if d["diff"] is None:
        return f"{arm} and {other} answered no problem in common: nothing to compare"
    if d["diff"] > 0:
        claim = f"{arm} beats {other} by"
    elif d["diff"] < 0:
        claim = f"{arm} trails {other} by"
    else:
        claim = f"{arm} ties {other}, difference"
    level = round(BOOTSTRAP["level"] * 100)
    if d["ci_low"] is None:
        spread = f"{_problems(d['n_paired'])}: too few to estimate a spread"
        judgement = "cannot say"
    else:
        spread = f"{level}% CI {_signed(d['ci_low'])}..{_signed(d['ci_high'])}, {_problems(d['n_paired'])}"
        judgement = "significant" if d["significant"] else "not significant"
    unpaired = f"; {_problems(d['n_unpaired'])} answered by only one of them left out" if d["n_unpaired"] else ""
    return f"{claim} {_signed(d['diff'])} pass@1 ({spread}): {judgement}{unpaired}"


# --- the comparison -----------------------------------------------------------------------------------------

def corpus_style(arm: str, folder) -> dict:
    """Means of an arm's corpus drift metrics over its kept traces (None where no trace has the metric)."""
    path = Path(folder) / DRIFT_FILE
    table = read_table(path)
    row = {"arm": arm, "records": table.num_rows}
    for column in CORPUS_STYLE_COLUMNS:
        if column not in table.column_names:
            raise ValueError(f"{path}: column {column!r} is missing; rebuild this corpus (sft_corpus)")
        values = [v for v in table.column(column).to_pylist() if v is not None]
        row[column] = float(np.mean(values)) if values else None
    return row


def compare(score_dirs: dict[str, Path], missing: list[str], corpus_dirs: dict[str, Path] | None = None) -> Comparison:
    """The comparison of the models whose score folders are given (model -> folder), listing `missing`
    models as not scored. `corpus_dirs` (arm -> sft_corpus folder) add each arm's corpus style."""
    if not score_dirs:
        raise ValueError(f"no model has benchmark scores (missing: {', '.join(missing)}); materialize "
                         f"benchmark_scores first")
    frames = {model: read_scores(folder) for model, folder in score_dirs.items()}
    ks = sorted({k for folder in score_dirs.values() for k in scored_ks(folder)})
    rows = [row for model, frame in frames.items() for row in model_rows(model, frame, ks)]
    warnings = []
    digests = {model: benchmark_digest(folder) for model, folder in score_dirs.items()}
    if len(set(digests.values())) > 1:
        warnings.append("the models were scored on different benchmark versions (digests: " + ", ".join(
            f"{m} {(d or 'none')[:12]}" for m, d in digests.items()) + "): rescore the stale ones")
    suites = sorted({r["suite"] for r in rows})
    verdicts = []
    for suite in suites:
        for arm, other in COMPARISONS:
            verdict = {"suite": suite, "arm": arm, "other": other}
            absent = [m for m in (arm, other) if m not in frames or suite not in set(frames[m]["suite"])]
            if absent:
                verdicts.append({**verdict, "n_paired": 0, "n_unpaired": 0, "arm_pass@1": None,
                                 "other_pass@1": None, "diff": None, "ci_low": None, "ci_high": None,
                                 "significant": None,
                                 "sentence": f"{' and '.join(absent)} not scored on {suite}: no verdict"})
                continue
            d = paired_difference(*(frames[m][frames[m]["suite"] == suite] for m in (arm, other)))
            verdicts.append({**verdict, **d, "sentence": verdict_sentence(arm, other, d)})
    style = [corpus_style(arm, folder) for arm, folder in (corpus_dirs or {}).items()]
    return Comparison(rows=rows, verdicts=verdicts, corpus_style=style, scored=list(frames), missing=list(missing),
                      ks=ks, warnings=warnings)


# --- writing ------------------------------------------------------------------------------------------------

def comparison_schema(ks: list[int]) -> pa.Schema:
    return pa.schema(
        [("model", pa.string()), ("role", pa.string()), ("suite", pa.string()), ("bucket_kind", pa.string()),
         ("bucket", pa.string()), ("n_problems", pa.int64()), ("n_samples", pa.int64()), ("pass@1", pa.float64()),
         ("pass@1_ci_low", pa.float64()), ("pass@1_ci_high", pa.float64()), ("pass@1_sample_std", pa.float64())]
        + [(f"pass@{k}", pa.float64()) for k in ks if k != 1]
        + [("mean_thinking_tokens", pa.float64()), ("truncation_rate", pa.float64()), ("prompt_too_long", pa.int64()),
           ("no_answer", pa.int64()), ("teacher_marker_rate", pa.float64()), ("student_marker_rate", pa.float64())])


CORPUS_STYLE_SCHEMA = pa.schema([("arm", pa.string()), ("records", pa.int64())]
                                + [(c, pa.float64()) for c in CORPUS_STYLE_COLUMNS])


def _cell(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], lines: list[list]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + [
        "| " + " | ".join(_cell(v) for v in line) + " |" for line in lines]


def markdown(c: Comparison) -> str:
    level = round(BOOTSTRAP["level"] * 100)
    out = ["# Arm comparison", "",
           f"Scored: {', '.join(c.scored)}. Not scored (no benchmark_scores artifact): "
           f"{', '.join(c.missing) or 'none'}.", ""]
    out += [f"**Warning:** {w}" for w in c.warnings] + ([""] if c.warnings else [])
    out += [f"## Does tessy beat teacher_only and the base student?", "",
            f"pass@1 differences paired over the same problems; {level}% CI from a bootstrap over problems "
            f"({BOOTSTRAP['resamples']:,} resamples).", ""]
    out += [f"- **{v['suite']}**: {v['sentence']}." for v in c.verdicts] + [""]
    pass_k = [f"pass@{k}" for k in c.ks if k != 1]
    header = (["model", "pass@1", f"{level}% CI", "sample std"] + pass_k
              + ["thinking tokens", "truncated", "teacher markers", "student markers", "problems", "samples"])
    for suite in sorted({r["suite"] for r in c.rows}):
        whole = [r for r in c.rows if r["suite"] == suite and r["bucket_kind"] == "suite"]
        out += [f"## {suite}", ""]
        out += _table(header, [
            [r["model"], r["pass@1"],
             "n/a" if r["pass@1_ci_low"] is None else f"{r['pass@1_ci_low']:.3f}..{r['pass@1_ci_high']:.3f}",
             r["pass@1_sample_std"]] + [r.get(k) for k in pass_k]
            + [r["mean_thinking_tokens"], r["truncation_rate"], r["teacher_marker_rate"], r["student_marker_rate"],
               r["n_problems"], r["n_samples"]] for r in whole])
        for kind, _ in BUCKETS:
            buckets = sorted({r["bucket"] for r in c.rows if r["suite"] == suite and r["bucket_kind"] == kind})
            if not buckets:
                continue
            models = [r["model"] for r in whole]
            value = {(r["model"], r["bucket"]): r["pass@1"] for r in c.rows
                     if r["suite"] == suite and r["bucket_kind"] == kind}
            out += ["", f"pass@1 by {kind.replace('_', ' ')}:", ""]
            out += _table([kind] + models, [[b] + [value.get((m, b)) for m in models] for b in buckets])
        out.append("")
    if c.corpus_style:
        out += ["## Style of each arm's SFT corpus", "",
                "Means over the corpus' kept traces (drift_metrics.parquet): teacher token share, the boundary "
                "model's style-token rates, TF-IDF similarity to the student's own responses, the student's NLL "
                "(nats per token) of its thinking, style and capability tokens and of the answer.", ""]
        out += _table(["arm", "records"] + list(CORPUS_STYLE_COLUMNS),
                      [[s["arm"], s["records"]] + [s[col] for col in CORPUS_STYLE_COLUMNS] for s in c.corpus_style])
        out.append("")
    return "\n".join(out)


def metrics(c: Comparison) -> dict:
    """Numbers for the manifest and the asset's metadata: every model's pass@1 per suite, and the verdicts."""
    out = {"models_scored": len(c.scored), "models_missing": len(c.missing)}
    for r in c.rows:
        if r["bucket_kind"] == "suite":
            out[f"{r['suite']}.{r['model']}.pass@1"] = r["pass@1"]
    for v in c.verdicts:
        prefix = f"{v['suite']}.{v['arm']}_minus_{v['other']}"
        for key in ("diff", "ci_low", "ci_high"):
            if v[key] is not None:
                out[f"{prefix}.{key}"] = v[key]
        if v["significant"] is not None:
            out[f"{prefix}.significant"] = int(v["significant"])
    return out


def write_comparison(c: Comparison, out_dir) -> dict:
    """comparison.parquet, corpus_style.parquet and comparison.md into `out_dir`; returns `metrics(c)`."""
    out_dir = Path(out_dir)
    schema = comparison_schema(c.ks)
    write_table(pa.Table.from_pylist(c.rows, schema=schema), out_dir / COMPARISON_FILE, schema)
    write_table(pa.Table.from_pylist(c.corpus_style, schema=CORPUS_STYLE_SCHEMA), out_dir / CORPUS_STYLE_FILE,
                CORPUS_STYLE_SCHEMA)
    (out_dir / MARKDOWN_FILE).write_text(markdown(c))
    return metrics(c)
