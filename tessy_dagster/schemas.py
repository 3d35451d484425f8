"""The pyarrow schema of every table the platform writes, in one place."""

import pyarrow as pa

_i32 = pa.int32()

# The task prompts, from the toy world or a team's prompts file, with where each row came from.
PROMPTS = pa.schema([
    ("problem_id", pa.string()),
    ("prompt", pa.string()),
    ("tests", pa.string()),  # JSON of the source's tests column, "" when it has none
    ("difficulty", pa.string()),
    ("source", pa.string()),
    ("source_file", pa.string()),
    ("source_row", pa.int64()),  # 0-based position in source_file (JSONL: the line number minus 1)
])

# Every benchmark suite's problems in one table; `tests` is the kind's JSON (see evaluate/benchmarks).
BENCHMARK_PROBLEMS = pa.schema([
    ("problem_id", pa.string()),
    ("suite", pa.string()),
    ("kind", pa.string()),  # toy | humaneval | livecodebench | final_answer
    ("prompt", pa.string()),  # the user message, worded as the benchmark's own harness words it
    ("tests", pa.string()),
    ("difficulty", pa.string()),  # livecodebench: easy/medium/hard; toy: the step count ("3-step"); else ""
    ("release_date", pa.string()),  # livecodebench: contest date YYYY-MM-DD; else ""
    ("source_file", pa.string()),
    ("source_row", pa.int64()),  # 0-based position in source_file (JSONL: the line number minus 1)
])

SPAN = pa.struct([("text", pa.string()), ("author", pa.string()), ("start", _i32), ("end", _i32)])
STYLE_SPAN = pa.struct([("start", _i32), ("end", _i32)])

_WINDOW = [  # what every window records: where it came from and its text
    ("window_id", pa.string()),
    ("source_model", pa.string()),
    ("response_id", pa.string()),
    ("start_word", _i32),
    ("text", pa.string()),
    ("annotator", pa.string()),
]
BOUNDARY_WINDOWS = pa.schema(_WINDOW + [("style_spans", pa.list_(STYLE_SPAN))])
BOUNDARY_REJECTED = pa.schema(_WINDOW + [
    ("reason", pa.string()),  # one of boundary.annotate.REJECTION_REASONS
    ("reply", pa.string()),  # the annotator model's raw reply
])

TRACES = pa.schema([
    ("prompt_id", pa.string()),
    ("arm", pa.string()),
    ("prompt", pa.string()),
    ("thinking", pa.string()),
    ("answer", pa.string()),
    ("spans", pa.list_(SPAN)),
    ("n_tokens_student", _i32),  # tokens written by the student, counted by the student's tokenizer
    ("n_tokens_teacher", _i32),  # tokens written by the teacher, counted by the student's tokenizer
    ("n_tokens_total", _i32),
    ("n_own_tokens_student", _i32),  # the same spans counted by each author's own tokenizer
    ("n_own_tokens_teacher", _i32),
    ("n_switches", _i32),
    ("rollback_tokens", _i32),  # generated, then cut at a boundary (author's tokens)
    ("rounds", _i32),
    ("ended", pa.string()),  # end_of_thinking | length_budget | repetition | empty_reply | max_rounds
    ("answer_finish_reason", pa.string()),  # stop | length | none (no answer written)
    ("answer_author", pa.string()),  # student | teacher | none (no answer: the trace failed)
    ("attempts", _i32),
    ("seed", pa.int64()),  # this row's draw of its prompt: sample_seed(carry_over.prompt_seed(...), sample)
    ("sampling", pa.string()),
    ("teacher_digest", pa.string()),
    ("student_digest", pa.string()),
    ("boundary_digest", pa.string()),
    # digest of everything the trace depends on (prompt, models, settings, code): a rerun carries the row over
    # while it is unchanged (cooperate/carry_over.py)
    ("trace_key", pa.string()),
    ("sample", _i32),  # 1..N: which sample of the prompt this is (cooperate.verify_answers draws up to N)
    ("thinking_passed", pa.bool_()),  # the thinking's final code passes the prompt's tests; null: no tests
    ("answer_passed", pa.bool_()),  # the answer passes the prompt's tests; null: no tests (corpus/correctness.py)
])

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])

SFT_CORPUS = pa.schema([
    ("prompt_id", pa.string()),
    ("messages", pa.list_(MESSAGE)),
    ("n_tokens_total", _i32),
    ("thinking_passed", pa.bool_()),  # the thinking's final code passed the prompt's tests (null: none to run)
    ("answer_passed", pa.bool_()),
])

# Per-trace style-drift metrics of a corpus' records (corpus/drift_metrics.py), written beside the corpus;
# the drift gate's Great Expectations suite runs over this table. NLL columns are the student's mean
# per-token negative log-likelihood (nats) over a group of thinking tokens, `n_<group>_tokens` the group's
# size; null where the group is empty or the model-based metrics were not computed.
DRIFT_NLL_GROUPS = ("thinking", "student_spans", "teacher_spans", "style", "capability", "student_style",
                    "student_capability", "teacher_style", "teacher_capability")
DRIFT_METRICS = pa.schema(
    [("prompt_id", pa.string())]
    + [field for group in DRIFT_NLL_GROUPS for field in ((f"nll_{group}", pa.float64()), (f"n_{group}_tokens", _i32))]
    + [("nll_answer", pa.float64()), ("n_answer_tokens", _i32),
       ("similarity", pa.float64()),  # TF-IDF cosine to the student's own response to the prompt
       ("style_rate", pa.float64()), ("style_rate_student", pa.float64()), ("style_rate_teacher", pa.float64()),
       ("teacher_token_share", pa.float64()),
       ("teacher_marker_rate", pa.float64()), ("student_marker_rate", pa.float64()),  # null without a lexicon
       ("thinking_passed", pa.bool_()), ("answer_passed", pa.bool_())]
)

# The traces the corpus filters dropped, one row each, written beside the corpus (corpus/filters.py).
DROPPED = pa.schema([
    ("prompt_id", pa.string()),
    ("reason", pa.string()),  # the first matching reason: ended_*, over_budget, ..., contaminated_<suite>, ...
    ("detail", pa.string()),  # what shows it: the duplicated id, the suite, problem and n-gram, the counts
])

# One row per sampled answer to a benchmark problem.
SCORES = pa.schema([
    ("problem_id", pa.string()),
    ("suite", pa.string()),
    ("kind", pa.string()),
    ("difficulty", pa.string()),
    ("release_date", pa.string()),
    ("sample", _i32),  # 0 .. samples_per_problem - 1
    ("thinking", pa.string()),
    ("answer", pa.string()),
    ("closed", pa.bool_()),  # the thinking section was closed (an answer could follow)
    ("thinking_tokens", _i32),  # in the scored model's tokenizer
    ("finish_reason", pa.string()),  # stop | length | prompt_too_long
    ("truncated", pa.bool_()),  # generation hit max_new_tokens
    ("status", pa.string()),  # the judge's verdict, or no_answer / prompt_too_long
    ("detail", pa.string()),
    ("n_passed", _i32),
    ("n_tests", _i32),
    ("passed", pa.bool_()),
    ("teacher_marker_rate", pa.float64()),  # null where no lexicon is configured
    ("student_marker_rate", pa.float64()),
])
