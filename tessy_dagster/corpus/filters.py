"""From cooperative traces to the SFT corpus: filters, each counted by reason, then chat records with drift
metrics.

Every trace is either kept or dropped for exactly one reason, the first that matches, in this order:
1. fixed (DuckDB; they protect training from broken records, so no setting turns them off):
   `ended_<how>` (the thinking did not end normally: length budget, repetition loop, empty reply, max rounds),
   `over_budget` (more tokens than the budget), `answer_<finish>` (the answer was cut), `empty_answer`;
2. structure (`filters.structure`): `extra_thinking_section`, `no_code_block`;
3. execution-verified answers (`verified`, on for the arms `cooperate.verify_answers` samples again):
   `not_verified`, a trace whose answer failed its prompt's tests in the sandbox (`answer_passed` false; a
   prompt without tests has nothing to verify and stays), before decontamination and dedup, so that a
   duplicate group keeps a verified row;
4. decontamination (`filters.decontamination`): `contaminated_<suite>`, per benchmark suite;
5. exact and near duplicates (`filters.dedup`): `duplicate_exact`, `near_duplicate`, last so that a duplicate
   group keeps a row no earlier filter drops.
The drops are written to `dropped.parquet` beside the corpus (prompt_id, reason, detail); the stats count
`traces`, `records` and `dropped_<reason>`. The rules and their defaults are in `quality.py`.

The kept records' per-trace drift metrics go to `drift_metrics.parquet` (schemas.DRIFT_METRICS): the teacher
token share, the lexicon marker rates where a lexicon is given, the traces' correctness verdicts, and the
model-based metrics that `drift` (a function of the kept trace rows, `drift_metrics.compute_drift_metrics`
with its models loaded) returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..chat_format import ThinkingFormat, load_thinking_format
from ..settings import CorpusFilters, StyleLexicons
from ..storage import read_table, write_table
from . import quality
from .drift_metrics import teacher_token_share
from .style import marker_rates

DROPPED_FILE = "dropped.parquet"

# Why a trace was dropped by the fixed filters (NULL: it passes them), and what shows it; evaluated by DuckDB.
_FIXED_REASON = """
CASE
  WHEN ended <> 'end_of_thinking' THEN 'ended_' || ended
  WHEN n_tokens_total > $budget THEN 'over_budget'
  WHEN answer_finish_reason <> 'stop' THEN 'answer_' || answer_finish_reason
  WHEN length(trim(answer)) = 0 THEN 'empty_answer'
END"""
_FIXED_DETAIL = """
CASE
  WHEN ended <> 'end_of_thinking' THEN 'ended: ' || ended
  WHEN n_tokens_total > $budget THEN 'n_tokens_total ' || CAST(n_tokens_total AS VARCHAR) || ' > budget '
                                      || CAST($budget AS VARCHAR)
  WHEN answer_finish_reason <> 'stop' THEN 'answer_finish_reason: ' || answer_finish_reason
  WHEN length(trim(answer)) = 0 THEN 'the answer is blank'
END"""
_COLUMNS = "prompt_id, prompt, thinking, answer, spans, n_tokens_total, n_tokens_teacher, thinking_passed, answer_passed"
DRIFT_FILE = "drift_metrics.parquet"


def build_sft_corpus(traces_path: str | Path, out_path: str | Path, max_student_tokens: int, *,
                     student: ThinkingFormat | str | Path, lexicons: StyleLexicons | None = None,
                     filters: CorpusFilters = CorpusFilters(), benchmark_path: str | Path | None = None,
                     prompts_path: str | Path | None = None, verified: bool = False,
                     drift: Callable[[list[dict]], list[dict]] | None = None) -> dict:
    """Filter the traces (see the module's docstring) and write chat records whose assistant turn is in the
    student's own format (`student`: its thinking format, or its model folder to read it from the chat
    template) to `out_path`, the dropped traces to `dropped.parquet` and the kept ones' drift metrics to
    `drift_metrics.parquet` beside it. The lexicon marker rates are written where `lexicons` are given, else
    left null.

    `benchmark_path`: the benchmark table (schemas.BENCHMARK_PROBLEMS), needed while decontamination is on.
    `prompts_path`: the prompts table; each prompt's `tests` say whether it asks for code (else a keyword rule).
    `verified`: keep only traces whose answer passed its prompt's tests (where it has tests).
    `drift`: the model-based drift metrics of the kept trace rows (one dict per row, in order), or None.

    Returns the counts (traces, records, dropped per reason) and the corpus' mean drift metrics."""
    import duckdb

    traces_path = Path(traces_path)
    if not traces_path.exists():
        raise FileNotFoundError(f"{traces_path} is missing: materialize cooperative_traces for this arm first")
    index = _benchmark_index(benchmark_path, filters)
    tests = _prompt_tests(prompts_path) if filters.structure.enabled else {}
    fmt = student if isinstance(student, ThinkingFormat) else load_thinking_format(student)

    con = duckdb.connect()
    params = {"path": str(traces_path), "budget": max_student_tokens}
    traces = con.execute(
        f"SELECT {_COLUMNS}, {_FIXED_REASON} AS reason, {_FIXED_DETAIL} AS detail FROM read_parquet($path) "
        f"ORDER BY prompt_id", params).fetchall()
    dropped: dict[int, tuple[str, str]] = {}  # row (position in prompt_id order) -> (reason, detail)
    rows = []
    names = [c.strip() for c in _COLUMNS.split(",")]
    for position, (*values, reason, detail) in enumerate(traces):
        if reason is not None:
            dropped[position] = (reason, detail)
        else:
            rows.append({"row": position, **dict(zip(names, values))})
    for stage in (_structure, _verified, _decontamination, _dedup):
        rows = _apply(stage(rows, filters=filters, tests=tests, index=index, verified=verified), rows, dropped)

    records = [_record(row, fmt) for row in rows]
    write_table(pa.Table.from_pylist(records, schema=schemas.SFT_CORPUS), out_path, schemas.SFT_CORPUS)
    model_metrics = drift(rows) if drift is not None else [{} for _ in rows]
    metrics = [_drift_row(row, extra, lexicons) for row, extra in zip(rows, model_metrics)]
    metrics_path = Path(out_path).parent / DRIFT_FILE
    write_table(pa.Table.from_pylist(metrics, schema=schemas.DRIFT_METRICS), metrics_path, schemas.DRIFT_METRICS)
    dropped_rows = [{"prompt_id": traces[position][0], "reason": reason, "detail": detail}
                    for position, (reason, detail) in sorted(dropped.items())]
    write_table(pa.Table.from_pylist(dropped_rows, schema=schemas.DROPPED), Path(out_path).parent / DROPPED_FILE,
                schemas.DROPPED)

    counts: dict[str, int] = {}
    for reason, _ in dropped.values():
        counts[reason] = counts.get(reason, 0) + 1
    stats = {"traces": len(traces), "records": len(records), "dropped": len(dropped),
             **{f"dropped_{k}": v for k, v in sorted(counts.items())}}
    stats.update({f"filter_{name}_on": int(getattr(filters, name).enabled)
                  for name in ("structure", "decontamination", "dedup")})
    stats["filter_verified_on"] = int(verified)
    stats["mean_n_tokens_total"] = (sum(r["n_tokens_total"] for r in rows) / len(rows)) if rows else None
    # the means a person charts per arm: every drift metric and the pass rates (over records with tests)
    columns = [c for c in schemas.DRIFT_METRICS.names if c != "prompt_id" and not c.startswith("n_")]
    means = con.execute("SELECT " + ", ".join(f"avg(CAST({c} AS DOUBLE))" for c in columns) +
                        " FROM read_parquet($p)", {"p": str(metrics_path)}).fetchone()
    stats.update({f"mean_{c}": mean for c, mean in zip(columns, means)})
    return {k: float(v) if isinstance(v, float) else v for k, v in stats.items() if v is not None}


def _record(row: dict, fmt: ThinkingFormat) -> dict:
    """One corpus row (schemas.SFT_CORPUS) from a kept trace: the chat messages and the trace's verdicts."""
    return {
        "prompt_id": row["prompt_id"],
        "messages": [{"role": "user", "content": row["prompt"]},
                     {"role": "assistant", "content": fmt.assistant_content(row["thinking"], row["answer"])}],
        "n_tokens_total": row["n_tokens_total"],
        "thinking_passed": row["thinking_passed"], "answer_passed": row["answer_passed"],
    }


def _drift_row(row: dict, model_metrics: dict, lexicons: StyleLexicons | None) -> dict:
    """One row of drift_metrics.parquet: the model-based metrics (none when they were not computed), the
    teacher token share, the lexicon marker rates where a lexicon is given, and the trace's verdicts."""
    teacher_rate, student_rate = marker_rates(row["thinking"], lexicons) if lexicons else (None, None)
    return {**model_metrics, "prompt_id": row["prompt_id"], "teacher_token_share": teacher_token_share(row),
            "teacher_marker_rate": teacher_rate, "student_marker_rate": student_rate,
            "thinking_passed": row["thinking_passed"], "answer_passed": row["answer_passed"]}


def _apply(drops: dict[int, tuple[str, str]], rows: list[dict], dropped: dict) -> list[dict]:
    dropped.update(drops)
    return [r for r in rows if r["row"] not in drops]


# ---- the stages: each returns {row: (reason, detail)} for the rows it drops -------------------------------------

def _structure(rows, *, filters: CorpusFilters, tests: dict[str, str], **_) -> dict[int, tuple[str, str]]:
    s = filters.structure
    if not s.enabled:
        return {}
    drops = {}
    for row in rows:
        asks_code = quality.asks_for_code(row["prompt"], tests.get(row["prompt_id"]))
        problem = quality.structure_problem(row["thinking"], row["answer"], asks_code,
                                            one_thinking_section=s.one_thinking_section, code_block=s.code_block)
        if problem:
            drops[row["row"]] = problem
    return drops


def _verified(rows, *, verified: bool, **_) -> dict[int, tuple[str, str]]:
    if not verified:
        return {}
    return {r["row"]: ("not_verified", "the answer failed the prompt's tests in the sandbox")
            for r in rows if r["answer_passed"] is False}


def _decontamination(rows, *, filters: CorpusFilters, index: quality.BenchmarkIndex | None,
                     **_) -> dict[int, tuple[str, str]]:
    if index is None:
        return {}
    drops = {}
    for row in rows:
        fields = [("prompt", row["prompt"])]
        if filters.decontamination.check_traces:
            fields += [("thinking", row["thinking"]), ("answer", row["answer"])]
        hit = quality.contamination(index, fields)
        if hit:
            drops[row["row"]] = (f"contaminated_{hit.suite}",
                                       f"{hit.field} shares {index.n}-gram {hit.ngram!r} with {hit.suite} "
                                       f"problem {hit.problem_id}")
    return drops


def _dedup(rows, *, filters: CorpusFilters, **_) -> dict[int, tuple[str, str]]:
    d = filters.dedup
    if not d.enabled:
        return {}
    found = quality.find_duplicates(
        ((str(r["row"]), "\n".join((r["prompt"], r["thinking"], r["answer"]))) for r in rows),
        threshold=d.threshold, num_perm=d.num_perm, shingle_words=d.shingle_words, seed=d.seed)
    prompt_ids = {str(r["row"]): r["prompt_id"] for r in rows}
    return {int(key): (dup.reason, f"duplicates {prompt_ids[dup.of]} (Jaccard {dup.jaccard:.3f})")
            for key, dup in found.items()}


# ---- inputs ---------------------------------------------------------------------------------------------------

def _benchmark_index(benchmark_path, filters: CorpusFilters) -> quality.BenchmarkIndex | None:
    d = filters.decontamination
    if not d.enabled:
        return None
    if benchmark_path is None:
        raise ValueError("decontamination needs the benchmark table (benchmark_path, <benchmark>/problems.parquet); "
                         "pass it, or set corpus.filters.decontamination.enabled to false")
    benchmark_path = Path(benchmark_path)
    if not benchmark_path.exists():
        raise FileNotFoundError(f"{benchmark_path} is missing: materialize benchmark first (decontamination checks "
                                f"the corpus against every benchmark problem), or set "
                                f"corpus.filters.decontamination.enabled to false")
    table = read_table(benchmark_path)
    missing = [c for c in ("problem_id", "suite", "prompt") if c not in table.column_names]
    if missing:
        raise ValueError(f"{benchmark_path}: no column {', '.join(missing)}; expected the benchmark table "
                         f"(schemas.BENCHMARK_PROBLEMS): rematerialize benchmark")
    problems = table.select(["suite", "problem_id", "prompt"]).to_pylist()
    return quality.BenchmarkIndex(((p["suite"], p["problem_id"], p["prompt"] or "") for p in problems),
                                  n=d.ngram, template_share=d.template_share)


def _prompt_tests(prompts_path) -> dict[str, str]:
    """prompt id -> its tests JSON, from the prompts table (none given: the keyword rule decides)."""
    if prompts_path is None:
        return {}
    prompts_path = Path(prompts_path)
    if not prompts_path.exists():
        raise FileNotFoundError(f"{prompts_path} is missing: materialize prompts first (its tests say which prompts "
                                f"ask for code)")
    table = read_table(prompts_path)
    return dict(zip(table.column("problem_id").to_pylist(), table.column("tests").to_pylist()))


def load_chat_records(corpus_path: str | Path) -> list[tuple[str, str]]:
    """(prompt, assistant turn) pairs, read back through `datasets` as a trainer would."""
    from datasets import load_dataset

    corpus_path = Path(corpus_path)
    if not corpus_path.exists():
        raise FileNotFoundError(f"{corpus_path} is missing: materialize sft_corpus for this arm first")
    ds = load_dataset("parquet", data_files=str(corpus_path), split="train")
    records = []
    for row_number, messages in enumerate(ds["messages"]):
        roles = [m["role"] for m in messages]
        if roles != ["user", "assistant"]:
            raise ValueError(f"{corpus_path}: row {row_number}, field messages: expected roles "
                             f"['user', 'assistant'], got {roles}")
        records.append((messages[0]["content"], messages[1]["content"]))
    return records
