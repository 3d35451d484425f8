"""Named DuckDB queries over the per-span provenance of a lineage: the traces (each span with its author, each
trace with its models' digests), the corpus records and the rows the corpus filters dropped.

The files are read where they are (`read_parquet`), found through the manifests: a query run from an
artifact reads the artifacts in its lineage (`audit.lineage`); run without one, every artifact of the home.
`rows_by_boundary_model` always reads every arm's traces of the home (they are downstream of the boundary
model) and keeps the rows of one boundary model: the lineage's, or the one `--digest` names.

Views the queries see: `traces` (schemas.TRACES), `corpus` (schemas.SFT_CORPUS plus `arm`), `dropped`
(schemas.DROPPED plus `arm`), `checkpoints` (`arm`, `corpus_arm`: the corpus each fine-tuned student was
trained on, from its manifest) and `artifacts` (`asset`, `partition` of everything in scope).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from . import schemas
from .audit import EXIT_OK, AuditUsageError, Lineage, home_lineage, lineage

TRACES_FILE = "traces.parquet"  # cooperate/run.py writes it under this name
CORPUS_FILE = "corpus.parquet"  # corpus/run.py's CORPUS_FILE
DROPPED_FILE = "dropped.parquet"  # corpus/filters.py's DROPPED_FILE


@dataclass(frozen=True)
class Query:
    description: str
    sql: str
    home_wide: bool = False  # reads every artifact of the home, not the lineage's


QUERIES = {
    "teacher_token_share": Query(
        "share of each checkpoint's training tokens the teacher wrote: student_checkpoint -> its sft_corpus "
        "records -> their traces' spans (thinking tokens in the student's tokenizer; characters from the spans)",
        """
        SELECT k.arm AS checkpoint, count(*) AS records,
               sum(t.n_tokens_teacher) AS teacher_tokens, sum(t.n_tokens_total) AS thinking_tokens,
               round(sum(t.n_tokens_teacher) / nullif(sum(t.n_tokens_total), 0), 4) AS teacher_token_share,
               round(sum(coalesce(list_sum([length(s.text) FOR s IN t.spans IF s.author = 'teacher']), 0))
                     / nullif(sum(coalesce(list_sum([length(s.text) FOR s IN t.spans]), 0)), 0), 4)
                 AS teacher_char_share,
               count(*) FILTER (WHERE t.answer_author = 'teacher') AS answers_by_teacher
        FROM checkpoints k
        JOIN corpus c ON c.arm = k.corpus_arm
        JOIN traces t ON t.arm = c.arm AND t.prompt_id = c.prompt_id
        GROUP BY k.arm ORDER BY k.arm"""),
    "traces_by_switch_count": Query(
        "traces per arm and number of author switches, with their mean teacher token share and length",
        """
        SELECT arm, n_switches AS switches, count(*) AS traces,
               count(*) FILTER (WHERE ended = 'end_of_thinking') AS ended_normally,
               round(avg(n_tokens_teacher / nullif(n_tokens_total, 0)), 4) AS mean_teacher_token_share,
               round(avg(n_tokens_total), 1) AS mean_thinking_tokens
        FROM traces GROUP BY arm, n_switches ORDER BY arm, switches"""),
    "rows_by_boundary_model": Query(
        "trace rows each boundary model steered, per arm, across every arm of the home, and how many became "
        "corpus records (the lineage's boundary model, or --digest; no artifact and no --digest: every one)",
        """
        SELECT t.boundary_digest, t.arm, count(*) AS traces, sum(t.n_switches) AS switches,
               sum(t.n_tokens_teacher) AS teacher_tokens, sum(t.n_tokens_total) AS thinking_tokens,
               CASE WHEN t.arm IN (SELECT partition FROM artifacts WHERE asset = 'sft_corpus')
                    THEN count(c.prompt_id) END AS corpus_records
        FROM traces t LEFT JOIN corpus c ON c.arm = t.arm AND c.prompt_id = t.prompt_id
        WHERE t.boundary_digest <> '' AND starts_with(t.boundary_digest, $digest)
        GROUP BY t.boundary_digest, t.arm ORDER BY t.boundary_digest, t.arm""",
        home_wide=True),
    "dropped_by_reason": Query(
        "the traces the corpus filters dropped, per arm and reason, with the first prompt and its detail",
        """
        SELECT arm, reason, count(*) AS rows, min(prompt_id) AS first_prompt,
               arg_min(detail, prompt_id) AS first_detail
        FROM dropped GROUP BY arm, reason ORDER BY arm, rows DESC, reason"""),
}


@dataclass
class QueryResult:
    name: str
    columns: list[str]
    rows: list[tuple]

    def as_dicts(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def render(self) -> str:
        cells = [self.columns] + [["" if v is None else str(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
        return "\n".join([line(cells[0]), line(["-" * w for w in widths])] + [line(r) for r in cells[1:]]
                         + [f"({len(self.rows)} row{'s' if len(self.rows) != 1 else ''})"])


def run_query(home: str | Path, name: str, asset: str | None = None, partition: str | None = None,
              digest: str | None = None) -> QueryResult:
    """Run the named query over the lineage of `asset`/`partition` (None: every artifact of `home`)."""
    if name not in QUERIES:
        raise AuditUsageError(f"no query {name!r}; the named queries: {', '.join(QUERIES)}")
    query = QUERIES[name]
    graph = lineage(home, asset, partition) if asset else home_lineage(home)
    params = {}
    if "$digest" in query.sql:
        params["digest"] = digest if digest is not None else _boundary_digest(graph, asset)
    scope = home_lineage(home) if query.home_wide and asset else graph
    con = _connect(scope)
    relation = con.sql(query.sql, params=params)
    return QueryResult(name, list(relation.columns), relation.fetchall())


def _boundary_digest(graph: Lineage, asset: str | None) -> str:
    if asset is None:
        return ""  # every boundary model of the home
    models = graph.of_asset("boundary_model")
    if not models:
        raise AuditUsageError(f"no boundary_model in the lineage of {graph.root}: start from an artifact made "
                              f"with one, or name it with --digest")
    return models[0].data_version


def _connect(scope: Lineage):
    """A DuckDB connection with the views over the scope's Parquet files (empty tables where none exist)."""
    import duckdb

    con = duckdb.connect()
    traces, corpora = scope.of_asset("cooperative_traces"), scope.of_asset("sft_corpus")
    _view(con, "traces", [Path(a.data_dir) / TRACES_FILE for a in traces], schemas.TRACES, with_arm=False)
    _view(con, "corpus", [Path(a.data_dir) / CORPUS_FILE for a in corpora], schemas.SFT_CORPUS)
    _view(con, "dropped", [Path(a.data_dir) / DROPPED_FILE for a in corpora], schemas.DROPPED)
    checkpoints = [{"arm": a.partition, "corpus_arm": _input_partition(scope, a, "sft_corpus")}
                   for a in scope.of_asset("student_checkpoint")]
    con.register("checkpoints", pa.Table.from_pylist(
        checkpoints, schema=pa.schema([("arm", pa.string()), ("corpus_arm", pa.string())])))
    con.register("artifacts", pa.Table.from_pylist(
        [{"asset": a.asset, "partition": a.partition} for a in scope.artifacts.values()],
        schema=pa.schema([("asset", pa.string()), ("partition", pa.string())])))
    return con


def _input_partition(scope: Lineage, artifact, input_name: str) -> str | None:
    upstream = next((i.artifact for i in artifact.inputs if i.name == input_name), None)
    return scope.artifacts[upstream].partition if upstream in scope.artifacts else None


def _view(con, name: str, paths: list[Path], schema: pa.Schema, with_arm: bool = True) -> None:
    """A view over the files; `arm` is the partition folder each file sits in (`<asset>/<arm>/<file>`)."""
    for path in paths:
        if not path.exists():
            raise AuditUsageError(f"{path} is missing: rematerialize {path.parent.parent.name} "
                                  f"[{path.parent.name}] (the lineage audit names what changed)")
    if not paths:
        empty = schema.empty_table()
        con.register(name, empty.append_column("arm", pa.array([], pa.string())) if with_arm else empty)
        return
    files = "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"
    arm = "parse_filename(parse_dirpath(filename)) AS arm, " if with_arm else ""
    con.execute(f"CREATE VIEW {name} AS SELECT {arm}* EXCLUDE (filename) "
                f"FROM read_parquet({files}, filename = true)")


def run_from_command_line(home: Path, args) -> int:
    """`--query NAME` of `python -m tessy_dagster.audit`: print the table (or JSON rows), or list the queries."""
    if args.query == "list":
        width = max(len(n) for n in QUERIES)
        for name, query in QUERIES.items():
            print(f"{name.ljust(width)}  {query.description}")
        return EXIT_OK
    result = run_query(home, args.query, args.asset, args.partition, args.digest)
    print(json.dumps(result.as_dicts(), indent=2, default=str) if args.json else result.render())
    return EXIT_OK
