"""From cooperative traces to the SFT corpus: DuckDB filters, then chat records with drift metrics."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from .. import schemas
from ..chat_format import ThinkingFormat, load_thinking_format
from ..settings import StyleLexicons
from ..storage import write_table
from .style import marker_rates

_KEEP = "ended = 'end_of_thinking' AND n_tokens_total <= $budget AND answer_finish_reason = 'stop' " \
        "AND length(trim(answer)) > 0"

# Why a trace was dropped, first matching reason wins; evaluated by DuckDB.
_DROP_REASON = """
CASE
  WHEN ended <> 'end_of_thinking' THEN 'ended_' || ended
  WHEN n_tokens_total > $budget THEN 'over_budget'
  WHEN answer_finish_reason <> 'stop' THEN 'answer_' || answer_finish_reason
  WHEN length(trim(answer)) = 0 THEN 'empty_answer'
END"""


def build_sft_corpus(traces_path: str | Path, out_path: str | Path, max_student_tokens: int, *,
                     student: ThinkingFormat | str | Path, lexicons: StyleLexicons | None = None) -> dict:
    """Keep traces that ended normally, fit the budget and have an answer; write chat records whose
    assistant turn is in the student's own format (`student`: its thinking format, or its model folder to
    read it from the chat template). The lexicon marker rates are written where `lexicons` are given, else
    left null.

    Returns counts per drop reason and the corpus' mean drift metrics."""
    import duckdb

    traces_path = Path(traces_path)
    if not traces_path.exists():
        raise FileNotFoundError(f"{traces_path} is missing: materialize cooperative_traces for this arm first")
    fmt = student if isinstance(student, ThinkingFormat) else load_thinking_format(student)
    con = duckdb.connect()
    params = {"path": str(traces_path), "budget": max_student_tokens}
    n_traces = con.execute("SELECT count(*) FROM read_parquet($path)", {"path": str(traces_path)}).fetchone()[0]
    drops = dict(con.execute(
        f"SELECT {_DROP_REASON} AS reason, count(*) FROM read_parquet($path) WHERE NOT ({_KEEP}) GROUP BY reason",
        params).fetchall())
    kept = con.execute(
        f"SELECT prompt_id, prompt, thinking, answer, n_tokens_total, n_tokens_teacher FROM read_parquet($path) "
        f"WHERE {_KEEP} ORDER BY prompt_id", params).fetchall()
    rows = []
    for prompt_id, prompt, thinking, answer, total, teacher in kept:
        teacher_rate, student_rate = marker_rates(thinking, lexicons) if lexicons else (None, None)
        rows.append({
            "prompt_id": prompt_id,
            "messages": [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": fmt.assistant_content(thinking, answer)}],
            "n_tokens_total": total,
            "teacher_token_share": teacher / total if total else 0.0,
            "teacher_marker_rate": teacher_rate, "student_marker_rate": student_rate,
        })
    table = pa.Table.from_pylist(rows, schema=schemas.SFT_CORPUS)
    write_table(table, out_path, schemas.SFT_CORPUS)
    stats = {"traces": n_traces, "records": len(rows), **{f"dropped_{k}": v for k, v in sorted(drops.items())}}
    for column in ("teacher_token_share", "teacher_marker_rate", "student_marker_rate", "n_tokens_total"):
        mean = con.execute(f"SELECT avg({column}) FROM read_parquet($p)", {"p": str(out_path)}).fetchone()[0]
        if mean is not None:  # an empty corpus, or marker rates without a lexicon
            stats[f"mean_{column}"] = float(mean)
    return stats


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
