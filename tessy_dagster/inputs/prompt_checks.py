"""The `prompts` asset's blocking Great Expectations suite, and the error naming the rows that fail it.

:func:`validate_prompts` runs the suite over the rows a reader returned (ids present and unique, prompts
not empty, prompts within each model's context less the tokens reserved for the trace): the checks in
:data:`PROMPT_CHECKS` are the asset's blocking checks. A failing suite does not raise there;
:func:`assert_prompts_valid` then raises :class:`PromptsInvalid` (a ValueError carrying the verdict) naming
the first offending row of each failing kind, and up to :data:`MAX_LISTED` more of the same kind, so one
run shows the extent of the damage. Reading the source is prompts.py's; rows are located as
prompt_locations.py words them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Callable

from ..gx_suite import Planned, expect, run_checks
from ..settings import PromptColumns, PromptsFile
from .prompt_locations import _field, _format_of, _where

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas

# The suite's checks (the asset's blocking asset checks) and what each one asserts.
PROMPT_CHECKS = {
    "ids_unique": "every row has an id, and no two rows share one",
    "prompts_non_empty": "the source has rows, and no prompt is null, empty or only whitespace",
    "prompts_fit_context": "every prompt fits each model's context, less the tokens reserved for the trace",
}
CHECKS = tuple(PROMPT_CHECKS)
MAX_LISTED = 5  # offending rows named per kind in one message

TokenCounter = Callable[[list[str]], list[int]]


class PromptsInvalid(ValueError):
    """The suite failed; the message names the offending rows, `verdict` is the suite's (for the checks)."""

    def __init__(self, message: str, verdict: dict):
        super().__init__(message)
        self.verdict = verdict


def _present(value: str | None) -> str | None:
    """The value, or None where it is null, empty or only whitespace: the suite counts nulls."""
    return value if value is not None and value.strip() else None


def _reserve(reserve_tokens: dict[str, int] | int, model: str) -> int:
    return reserve_tokens.get(model, 0) if isinstance(reserve_tokens, dict) else reserve_tokens


def _frame(ids: list, prompts: list, tokens: dict[str, list]) -> "pandas.DataFrame":
    import pandas as pd  # lazily, like GX

    data = {"problem_id": pd.Series(ids, dtype="object"), "prompt": pd.Series(prompts, dtype="object")}
    for model, counts in tokens.items():  # null where the prompt is missing: GX skips nulls
        data[f"prompt_tokens_{model}"] = pd.Series(counts, dtype="float64")
    return pd.DataFrame(data)


def _plan(limits: dict[str, int]) -> dict[str, list[Planned]]:
    """Expectations per check, in :data:`CHECKS` order; per-row ones observe the count of offending rows."""
    fit = []
    for model, limit in limits.items():
        column = f"prompt_tokens_{model}"
        fit += [expect(column, "ExpectColumnValuesToBeBetween", 0, column=column, max_value=limit),
                expect(f"max_{column}", "ExpectColumnMaxToBeBetween", limit, column=column, max_value=limit)]
    return {
        "ids_unique": [
            expect("ids_present", "ExpectColumnValuesToNotBeNull", 0, column="problem_id"),
            expect("ids_unique", "ExpectColumnValuesToBeUnique", 0, column="problem_id"),
        ],
        "prompts_non_empty": [
            expect("rows", "ExpectTableRowCountToBeBetween", 1, min_value=1),
            expect("prompts_present", "ExpectColumnValuesToNotBeNull", 0, column="prompt"),
        ],
        "prompts_fit_context": fit,  # no models given: nothing to check, passes
    }


def _offending(ids: list, prompts: list, tokens: dict[str, list], limits: dict[str, int]) -> dict:
    """The same conditions as the suite's, per row, for the message (indices into the rows list)."""
    missing_ids = [i for i, v in enumerate(ids) if v is None]
    by_id = defaultdict(list)
    for i, v in enumerate(ids):
        if v is not None:
            by_id[v].append(i)
    duplicates = [{"problem_id": v, "rows": rows[:MAX_LISTED], "n": len(rows)}
                  for v, rows in by_id.items() if len(rows) > 1]
    missing_prompts = [i for i, v in enumerate(prompts) if v is None]
    out = {"ids_present": {"count": len(missing_ids), "rows": missing_ids[:MAX_LISTED]},
           "ids_unique": {"count": len(duplicates), "groups": duplicates[:MAX_LISTED]},
           "prompts_present": {"count": len(missing_prompts), "rows": missing_prompts[:MAX_LISTED]}}
    for model, limit in limits.items():
        over = [(i, n) for i, n in enumerate(tokens[model]) if n is not None and n > limit]
        out[f"prompt_tokens_{model}"] = {"count": len(over), "rows": [i for i, _ in over[:MAX_LISTED]],
                                         "tokens": [n for _, n in over[:MAX_LISTED]]}
    return out


def validate_prompts(rows: list[dict], *, context_limits: dict[str, tuple[int, TokenCounter]],
                     reserve_tokens: dict[str, int] | int = 0) -> dict:
    """Run the blocking GX suite over the rows; JSON-serialisable verdict:

    {"success": bool, "n_rows": int,
     "checks": {check: {"passed": bool, "expectations": [{name, success, observed, threshold}, ...]}},
     "limits": {model: {"context": int, "reserve": int, "max_prompt_tokens": int}},
     "offending": {expectation: {"count": int, "rows": [index into rows, ...], ...}}}

    `context_limits` maps a model name to (its context length, a function counting tokens of a list of
    texts in its tokenizer); a prompt may use the context minus `reserve_tokens` (per model, or one for all),
    which leaves room for the trace. A failing suite does not raise: :func:`assert_prompts_valid` does.
    """
    ids = [_present(r["problem_id"]) for r in rows]
    prompts = [_present(r["prompt"]) for r in rows]
    present = [i for i, p in enumerate(prompts) if p is not None]
    tokens, limits = {}, {}
    for model, (context, count_tokens) in context_limits.items():
        reserve = _reserve(reserve_tokens, model)
        if context - reserve < 1:
            raise ValueError(f"model {model}: a context of {context} tokens minus {reserve} reserved leaves no "
                             f"room for a prompt; lower the reserve")
        counts = list(count_tokens([prompts[i] for i in present]))
        if len(counts) != len(present):
            raise ValueError(f"model {model}: the token counter returned {len(counts)} counts for "
                             f"{len(present)} prompts")
        column = [None] * len(rows)
        for i, n in zip(present, counts):
            column[i] = int(n)
        tokens[model] = column
        limits[model] = context - reserve
    plan = _plan(limits)
    success, checks = run_checks(_frame(ids, prompts, tokens), plan, "prompts")
    return {
        "success": success,
        "n_rows": len(rows),
        "checks": checks,
        "limits": {m: {"context": context_limits[m][0], "reserve": _reserve(reserve_tokens, m),
                       "max_prompt_tokens": limit} for m, limit in limits.items()},
        "offending": _offending(ids, prompts, tokens, limits),
    }


def _also(locations: list[str], count: int, what: str) -> str:
    """' (3 rows <what>: line 4, line 9 and 1 more)' for a kind with more than one offending row."""
    if count <= 1:
        return ""
    more = count - len(locations)
    return f" ({count} rows {what}: {', '.join(locations)}{f' and {more} more' if more > 0 else ''})"


def _problems(verdict: dict, rows: list[dict], spec: PromptsFile | None) -> list[str]:
    """One message per failing kind, in CHECKS order."""
    fmt = (_format_of(spec) or "jsonl") if spec else "rows"  # no spec: rows built in code, "row N"
    at = lambda i: _where(fmt, rows[i]["source_file"], rows[i]["source_row"])  # noqa: E731
    # Later locations in the same file drop the file name.
    short = lambda i, first: at(i).removeprefix(f"{rows[first]['source_file']} ")  # noqa: E731
    cols, off, out = spec.columns if spec else PromptColumns(), verdict["offending"], []

    if (o := off["ids_present"])["count"]:
        first = o["rows"][0]
        out.append(f"{at(first)}, {_field(cols, 'id')}: the id is null or empty; give every row its own id"
                   + _also([short(i, first) for i in o["rows"]], o["count"], "without an id"))
    if (o := off["ids_unique"])["count"]:
        g = o["groups"][0]
        first = g["rows"][0]
        others = ", ".join(short(i, first) for i in g["rows"][1:]) + (
            f" and {g['n'] - len(g['rows'])} more" if g["n"] > len(g["rows"]) else "")
        rest = "; ".join(f"{h['problem_id']!r} at {', '.join(short(i, first) for i in h['rows'])}"
                         for h in o["groups"][1:])
        more = o["count"] - len(o["groups"])
        tail = f" ({o['count']} ids are duplicated; also {rest}{f' and {more} more ids' if more > 0 else ''})" \
            if rest else ""
        out.append(f"{at(first)}, {_field(cols, 'id')}: duplicate id {g['problem_id']!r}, also at {others}; ids "
                   f"must be unique: rename or drop the duplicates{tail}")
    if (o := off["prompts_present"])["count"]:
        first = o["rows"][0]
        out.append(f"{at(first)}, {_field(cols, 'prompt')}: the prompt is empty (null or only whitespace); write "
                   f"the prompt or drop the row" + _also([short(i, first) for i in o["rows"]], o["count"], "empty"))
    for model, lim in verdict["limits"].items():
        o = off[f"prompt_tokens_{model}"]
        if not o["count"]:
            continue
        first = o["rows"][0]
        reserved = f" minus {lim['reserve']:,} reserved for the trace" if lim["reserve"] else ""
        out.append(f"{at(first)}, {_field(cols, 'prompt')}: {o['tokens'][0]:,} tokens in the {model}'s tokenizer, "
                   f"over its context of {lim['context']:,}{reserved}; shorten it or drop the row"
                   + _also([f"{short(i, first)} ({n:,})" for i, n in zip(o["rows"], o["tokens"])], o["count"],
                           f"over {lim['max_prompt_tokens']:,} tokens"))
    return out


def assert_prompts_valid(verdict: dict, rows: list[dict], spec: PromptsFile | None = None) -> None:
    """Raise :class:`PromptsInvalid` (a ValueError) naming the file, row and field of the first offending row
    of each failing kind (ids, then prompts, then each model's context), one line per kind, when the suite
    failed; return when it passed. `spec` says how to word locations (JSONL lines); None for rows built in
    code (the toy world), located as "row N"."""
    if verdict["success"]:
        return
    problems = _problems(verdict, rows, spec)
    if not problems:  # a failure the per-row view does not explain (e.g. no rows at all)
        failed = [e["name"] for c in verdict["checks"].values() for e in c["expectations"] if not e["success"]]
        problems = [f"{spec.path if spec else 'prompts'}: the prompts failed their checks ({', '.join(failed)}); "
                    f"{'the source holds no prompts' if not rows else 'see the asset checks'}"]
    raise PromptsInvalid("\n".join(problems), verdict)
