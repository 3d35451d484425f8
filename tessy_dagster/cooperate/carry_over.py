"""Incremental synthesis: a rerun keeps every trace whose inputs did not change and generates only the rest.

A trace row depends on its prompt (id, text and tests: the tests give its correctness columns and, with
verification, decide how often it is drawn), the arm, the models it records (teacher, student, and the
boundary model for the cooperative arms), the settings that change how one prompt's trace is generated, how
many samples verification may draw for the arm, and the step's code version. Their digest is the row's
`trace_key`. Before generating, `write_traces` computes every prompt's key and carries over the rows of the
artifact it replaces (its `traces.parquet`, still in place while the step builds the new one) whose key is
unchanged; only the other prompts are generated. A previous file that cannot be read, or that lacks a column
of the TRACES schema (written by an older version), carries nothing over: every prompt is generated.

Settings left out of the key (`NOT_TRACE_INPUTS`), and why that is safe: they decide how the work is
scheduled, never what a prompt's trace is a sample of.
- `arms`: which partitions exist; one arm's traces never read another's.
- `shard_size`, `batch_size`, `generation.batch_size`: how many prompts are cut into a shard, in flight, in a
  forward batch. They change which prompts share a batch, as an incremental run does anyway (see the seeds).
- `verify_answers`: replaced by the one number that matters to this arm, its samples per prompt.
- `judge_workers`: sandbox runs at a time; each trace is judged alone.
- `score_candidates`, `reference_prompt`: read by one baseline arm each (`ONE_ARM_SETTINGS`), in its key only.
- `pipelined_requests`: whether a served model's requests wait for a round; each request is the same.
- `generation.memory_share`, `kv_cache_mib`: the vLLM engine's memory; `concurrency`, `timeout_s`,
  `max_retries`, `backoff_s`, `api_key_env`: how the openai client talks to its server (a failed request
  fails the step, it never changes a reply).
Everything else in `cooperate` (budgets, chunk sizes, sampling, the generation backend and its model
options, the seed) is in the key: changing it generates every prompt again.

Seeds. A prompt's seed depends only on `cooperate.seed` and its id (`prompt_seed`), never on its place among
the prompts, so an incremental run records the very seed a full rebuild records, and carried-over rows keep
theirs. Several prompts drawn together seed torch once, from their seeds (`draw_seed`), so a draw does not
depend on what ran before it and a resumed shard draws as the first attempt did. What this cannot give: the
`hf` backend samples a whole batch from one RNG, so with temperature > 0 a prompt's text also depends on which
prompts share its batch, and the traces an incremental run generates are other samples (same inputs, same
seeds and provenance, same distribution) than a full rebuild would draw (on the micro models every trace's
text differs). With greedy decoding (temperature 0) no RNG is involved and on the micro models the incremental
result equals a full rebuild's row for row, text included (tests/cooperate/test_incremental.py checks the
provenance under sampling and whole rows under greedy decoding);
on large models a different batch (other padding, other kernels) can still move a near-tie argmax.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from .. import schemas
from ..settings import CooperateSettings
from ..storage import digest_json

NOT_TRACE_INPUTS = {
    "arms": True, "shard_size": True, "batch_size": True, "verify_answers": True, "judge_workers": True,
    "pipelined_requests": True,
    "generation": {"batch_size", "memory_share", "kv_cache_mib", "concurrency", "timeout_s", "max_retries",
                   "backoff_s", "api_key_env"},
}

# Settings one arm alone reads (cooperate/baselines.py): in that arm's keys only.
ONE_ARM_SETTINGS = {"score_candidates": "teacher_score", "reference_prompt": "teacher_reference"}


def trace_keys(prompts: list[tuple[str, str, str]], *, arm: str, provenance: dict, settings: CooperateSettings,
               samples: int, code_version: str) -> dict[str, str]:
    """prompt id -> the digest of what its trace depends on. `prompts` are (id, text, tests); `provenance` is
    what every row records about the models and sampling (the digests it names are the models it used)."""
    exclude = {**NOT_TRACE_INPUTS, **{name: True for name, reader in ONE_ARM_SETTINGS.items() if reader != arm}}
    shared = digest_json({"arm": arm, "provenance": provenance, "samples": samples, "code_version": code_version,
                          "settings": settings.model_dump(exclude=exclude)})
    return {pid: digest_json([shared, pid, text, tests]) for pid, text, tests in prompts}


def prompt_seed(seed: int, prompt_id: str) -> int:
    """The seed of a prompt's first draw: from the run's seed and the prompt's id alone, below 2**32."""
    return int(digest_json(["prompt_seed", seed, prompt_id])[:8], 16)


def draw_seed(seeds) -> int:
    """What torch is seeded with before drawing prompts together: a function of their seeds, in any order."""
    return int(digest_json(sorted(seeds))[:15], 16)


def carry_over(previous: str | Path | None, keys: dict[str, str], progress: Callable[[str], None]) -> pa.Table:
    """The rows of the `previous` traces whose prompt is still asked with the same key (TRACES schema, at most
    one row a prompt); an empty table when there is no previous file or it cannot be used."""
    nothing = schemas.TRACES.empty_table()
    if previous is None or not Path(previous).exists():
        progress(f"carry-over: no previous traces{f' at {previous}' if previous else ''}: "
                 f"generating all {len(keys)} prompts")
        return nothing
    try:
        table = pq.read_table(previous)
        missing = [name for name in schemas.TRACES.names if name not in table.column_names]
        if missing:
            progress(f"carry-over: {previous} lacks the column(s) {', '.join(missing)} (written by an older "
                     f"version): generating all {len(keys)} prompts")
            return nothing
        table = table.select(schemas.TRACES.names).cast(schemas.TRACES)
    except (OSError, pa.ArrowException) as err:
        progress(f"carry-over: {previous} cannot be read ({err}): generating all {len(keys)} prompts")
        return nothing
    ids, old_keys = table.column("prompt_id").to_pylist(), table.column("trace_key").to_pylist()
    keep, kept = [], set()
    for pid, key in zip(ids, old_keys):
        keep.append(pid in keys and key == keys[pid] and pid not in kept)
        if keep[-1]:
            kept.add(pid)
    changed = len({pid for pid in ids if pid in keys} - kept)
    progress(f"carry-over: {len(kept)} of {len(keys)} prompts carried over from {previous}; generating "
             f"{len(keys) - len(kept)} ({len(keys) - len(kept) - changed} new, {changed} whose inputs changed)")
    return table.filter(pa.array(keep, type=pa.bool_()))
