import re

import pyarrow.parquet as pq
import pytest

from tessy_dagster.cooperate.baselines import COMPOSITE_ARMS, choose_by_teacher, reference_prompt
from tessy_dagster.cooperate.carry_over import prompt_seed
from tessy_dagster.cooperate.engine import ARM_PLAN, complete_to_whitespace, has_repetition_loop
from tessy_dagster.cooperate.run import write_traces
from tessy_dagster.settings import ALL_ARMS, CooperateSettings


def test_complete_to_whitespace_never_splits_a_word():
    chunk = "abc defg hi"
    assert complete_to_whitespace(chunk, 0) == 0
    assert complete_to_whitespace(chunk, 4) == 3  # at a word start: the space goes to the next writer
    assert complete_to_whitespace(chunk, 5) == 8  # inside "defg": to its end
    assert complete_to_whitespace(chunk, 10) == 11  # inside the last word: to the chunk's end
    assert complete_to_whitespace(chunk, 3) == 3  # right before a space
    assert complete_to_whitespace("a.\n\nNow", 4) == 2  # a run of whitespace goes along too
    assert complete_to_whitespace("abc ", 4) == 4  # a chunk kept whole stays whole


def test_repetition_rule():
    loop = "start " + "a b c " * 8
    assert has_repetition_loop(loop, 3, 50, 8)
    assert not has_repetition_loop("start " + "a b c " * 7, 3, 50, 8)
    assert not has_repetition_loop("one two three four five six", 3, 50, 8)


@pytest.fixture(scope="module")
def traces(micro_world, micro, tmp_path_factory):
    out = {}
    for arm in ALL_ARMS:
        folder = tmp_path_factory.mktemp(arm)
        metrics = write_traces(arm=arm, teacher_dir=micro_world["teacher"], student_dir=micro_world["student"],
                               boundary_dir=micro_world["boundary"],
                               prompts_path=micro_world["prompts"] / "prompts.parquet",
                               digests={"teacher_model": "t", "student_model": "s", "boundary_model": "b"},
                               settings=micro.cooperate, context_tokens=micro.boundary.context_tokens,
                               out_dir=folder, work_dir=folder / "work", progress=lambda m: None)
        out[arm] = (metrics, pq.read_table(folder / "traces.parquet").to_pylist())
    return out


def test_every_prompt_gets_exactly_one_row(traces, micro):
    for metrics, rows in traces.values():
        assert len(rows) == micro.toyworld.n_prompts == metrics["traces"]
        assert len({r["prompt_id"] for r in rows}) == len(rows)


def test_spans_tile_the_thinking_and_token_counts_add_up(traces):
    _, rows = traces["tessy"]
    for r in rows:
        end = 0
        for span in r["spans"]:
            assert span["start"] >= end and r["thinking"][span["start"]:span["end"]] == span["text"]
            assert span["author"] in ("teacher", "student")
            end = span["end"]
        assert r["n_tokens_total"] == r["n_tokens_student"] + r["n_tokens_teacher"]
        assert r["ended"] in ("end_of_thinking", "length_budget", "repetition", "empty_reply", "max_rounds")
        assert r["answer_author"] == ("student" if r["ended"] == "end_of_thinking" else "none")
        assert r["boundary_digest"] == "b"


def test_the_student_opens_every_tessy_trace(traces):
    _, rows = traces["tessy"]
    opened = [r for r in rows if r["spans"]]
    assert opened and all(r["spans"][0]["author"] == "student" for r in opened)


def test_teacher_only_is_written_by_the_teacher(traces):
    metrics, rows = traces["teacher_only"]
    assert metrics["teacher_token_share"] == 1.0
    assert all(r["n_tokens_student"] == 0 and r["n_switches"] == 0 for r in rows)
    assert all(r["answer_author"] == ("teacher" if r["ended"] == "end_of_thinking" else "none") for r in rows)


def test_the_ablation_arms_take_thinking_and_answer_from_the_right_models(traces):
    assert set(ARM_PLAN) | set(COMPOSITE_ARMS) == set(ALL_ARMS)
    _, think = traces["teacher_think"]
    assert all(r["n_tokens_student"] == 0 and r["n_switches"] == 0 for r in think)
    assert all(r["answer_author"] == ("student" if r["ended"] == "end_of_thinking" else "none") for r in think)
    _, answer = traces["teacher_answer"]
    assert all(r["answer_author"] == ("teacher" if r["ended"] == "end_of_thinking" else "none") for r in answer)
    assert any(r["n_tokens_student"] > 0 for r in answer) and all(r["boundary_digest"] == "b" for r in answer)
    assert all(r["arm"] == arm for arm, (_, rows) in traces.items() for r in rows)


def test_tessy_needs_a_boundary_model(micro_world, micro, tmp_path):
    with pytest.raises(ValueError, match="boundary model"):
        write_traces(arm="tessy", teacher_dir=micro_world["teacher"], student_dir=micro_world["student"],
                     boundary_dir=None, prompts_path=micro_world["prompts"] / "prompts.parquet", digests={},
                     settings=CooperateSettings(), context_tokens=8, out_dir=tmp_path, work_dir=tmp_path / "w")
    with pytest.raises(ValueError, match="unknown arm"):
        write_traces(arm="teacher_blend", teacher_dir="", student_dir="", boundary_dir=None, prompts_path="",
                     digests={}, settings=CooperateSettings(), context_tokens=8, out_dir=tmp_path,
                     work_dir=tmp_path / "w")
    with pytest.raises(ValueError, match="arms"):
        CooperateSettings(arms=("tessy", "teacher_blend"))


def test_engine_keeps_no_cache_after_a_run(micro_world, micro):
    """The hf backend caches the sequences in flight only: nothing is left once the arm has run."""
    from tessy_dagster.boundary.model import BoundaryPredictor
    from tessy_dagster.cooperate.engine import CooperativeEngine
    from tessy_dagster.cooperate.hf_backend import HFGenerator

    models = {role: HFGenerator(micro_world[role], batch_size=4) for role in ("teacher", "student")}
    boundary = BoundaryPredictor(micro_world["boundary"], context_tokens=micro.boundary.context_tokens)
    prompts = [(r["problem_id"], r["prompt"])
               for r in pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist()[:6]]
    rows = CooperativeEngine(models, boundary, micro.cooperate, provenance={}, progress=lambda m: None).run(
        "tessy", prompts)
    assert sorted(r["prompt_id"] for r in rows) == sorted(p for p, _ in prompts)
    assert models["teacher"].reused_tokens > 0 and models["student"].reused_tokens > 0
    assert not models["teacher"]._cache and not models["student"]._cache


# --- the fresh-turn rule, on scripted models and a boundary that misjudges one handoff -------------------

from tessy_dagster.cooperate.engine import CooperativeEngine, first_word_end  # noqa: E402
from tessy_dagster.cooperate.generation import Generation  # noqa: E402

STUDENT_MARKERS = ("Now", "then,", "Next", "up,")


class ScriptedModel:
    """Replies from a script, one per call and sequence; a word is a token."""

    def __init__(self, replies):
        self.replies, self.prompts = list(replies), []

    def thinking_prompt(self, user):
        return f"<{user}>"

    def answer_prompt(self, user, thinking):
        return f"<{user}>{thinking}</think>"

    def generate(self, prompts, max_new_tokens, sampling, stop_at_think_end, cache_keys=None):
        self.prompts.extend(prompts)
        return [self.replies.pop(0) for _ in prompts]

    def count_tokens(self, texts):
        return [len(t.split()) for t in texts]

    def release(self, keys):
        pass


class WordBoundary:
    """B_S cuts a student chunk at its first word that is not a student marker; B_T cuts a teacher chunk at
    its first marker word, and (the misjudgement of a B_T trained on teacher windows only) refuses the first
    word of any chunk that follows a student marker. Offsets are where the word starts."""

    def __init__(self):
        self.calls = []

    def switch_starts(self, contexts, chunks, roles):
        out = []
        for context, chunk, role in zip(contexts, chunks, roles):
            self.calls.append((context, chunk, role))
            starts = []
            for m in re.finditer(r"\S+", chunk):
                if not context and m.start() == len(chunk) - len(chunk.lstrip()):
                    continue  # no context: the opening word stays
                style = m.group() in STUDENT_MARKERS
                if role == "teacher" and m.start() == len(chunk) - len(chunk.lstrip()) \
                        and context.rstrip().endswith("then,"):
                    style = True  # the misjudged handoff
                if style != (role == "student"):
                    starts.append(m.start())
            out.append(starts)
        return out


def test_first_word_end():
    assert first_word_end(" Step 2 adds") == 5
    assert first_word_end("\nNow then,") == 4
    assert first_word_end("word") == 4


def test_a_handed_over_capability_line_is_not_split_by_a_refused_first_word():
    """The teacher takes over after the student's marker; its predictor refuses the first word. The teacher
    keeps that word by the fresh-turn rule, and the rest of its chunk is judged as any chunk is: the line
    stays the teacher's, and the student is not handed a capability word it cannot write."""
    student = ScriptedModel([Generation("Now then, Step 2", 5, "length"),
                             Generation("def f(x):\n    return (x + 3)", 8, "stop")])
    teacher = ScriptedModel([Generation(" Step 1 adds 3: (x + 3).", 10, "think_end")])
    boundary = WordBoundary()
    engine = CooperativeEngine({"student": student, "teacher": teacher}, boundary,
                               CooperateSettings(max_retries=0), {}, progress=lambda m: None)
    [row] = engine.run("tessy", [("p1", "f adds 3")])
    assert [(s["text"], s["author"]) for s in row["spans"]] == [("Now then,", "student"),
                                                                 (" Step 1 adds 3: (x + 3).", "teacher")]
    assert row["n_switches"] == 1 and row["ended"] == "end_of_thinking"
    # one question per chunk: the switch starts after the kept word decide, as in any chunk
    assert boundary.calls[-1] == ("Now then,", " Step 1 adds 3: (x + 3).", "teacher")


def test_a_fresh_turn_refused_again_after_its_first_word_hands_over_there():
    """When the predictor still says the text after the kept word is not the role's, the role hands over
    right after that word, as before."""
    student = ScriptedModel([Generation("Now then, Step", 5, "length"), Generation(" Next up,", 5, "think_end"),
                             Generation("def f(x):\n    return x", 8, "stop")])
    teacher = ScriptedModel([Generation(" Step Next up,", 10, "length")])
    engine = CooperativeEngine({"student": student, "teacher": teacher}, WordBoundary(),
                               CooperateSettings(max_retries=0), {}, progress=lambda m: None)
    [row] = engine.run("tessy", [("p1", "f")])
    assert [(s["text"], s["author"]) for s in row["spans"]] == [
        ("Now then,", "student"), (" Step", "teacher"), (" Next up,", "student")]


def test_learned_chunk_lengths_follow_each_roles_turns():
    from tessy_dagster.cooperate.engine import ChunkLengths

    learned = ChunkLengths(CooperateSettings(chunk_lengths="learned", chunk_quantile=0.5))
    fixed = ChunkLengths(CooperateSettings())
    for chunks in (learned, fixed):
        for n in [3] * 20 + [4] * 20:
            chunks.record("student", n)
        for n in range(10, 30):
            chunks.record("teacher", n)
    assert [fixed.ask("student", 0), fixed.ask("teacher", 0)] == [5, 10]  # k of the settings, always
    assert learned.ask("student", 0) == 4  # the median turn
    assert learned.ask("student", 3) == 1  # the turns longer than 3 tokens have one left
    assert learned.ask("student", 4) == 5  # none longer: k of the settings
    assert learned.ask("teacher", 0) == 10  # 20 teacher turns, fewer than the warm-up: k of the settings
    for n in range(10, 30):
        learned.record("teacher", n)
    assert learned.ask("teacher", 0) == 20 and learned.ask("teacher", 25) == 3  # remaining 1, 1, 2, 2, 3, 3, 4, 4


def _written_by(row: dict, model: str) -> bool:
    """The row's thinking and answer are the model's alone (an empty trace counts for either)."""
    other = "student" if model == "teacher" else "teacher"
    return row[f"n_tokens_{other}"] == 0 and row["answer_author"] in (model, "none") and \
        all(span["author"] == model for span in row["spans"])


def test_teacher_mix_takes_each_prompt_from_the_teacher_or_the_student_by_its_seed(traces, micro):
    _, rows = traces["teacher_mix"]
    by_teacher = [prompt_seed(micro.cooperate.seed, r["prompt_id"]) % 2 == 0 for r in rows]
    assert 0 < sum(by_teacher) < len(rows)  # both writers on the micro prompts
    for row, teacher in zip(rows, by_teacher):
        assert _written_by(row, "teacher" if teacher else "student"), row["prompt_id"]


def test_teacher_score_and_teacher_reference_are_the_students_writing(traces):
    for arm in ("teacher_score", "teacher_reference"):
        _, rows = traces[arm]
        assert all(_written_by(r, "student") for r in rows)
        assert all(r["prompt"].startswith("Write a Python function") and "reference" not in r["prompt"]
                   for r in rows)  # the task's own prompt: what the student is fine-tuned on


def test_the_teacher_prefers_its_own_traces_to_the_students(traces, micro_world):
    """teacher_score's judge, on candidates whose answer is known: the teacher's own traces are far likelier
    under the teacher than the student's (its style, its tokenizer's habits), whichever candidate comes first."""
    student, teacher = traces["student_only"][1], traces["teacher_only"][1]
    assert choose_by_teacher(micro_world["teacher"], [student, teacher]) == [1] * len(student)
    assert choose_by_teacher(micro_world["teacher"], [teacher, student]) == [0] * len(student)


def test_the_reference_prompt_holds_the_task_and_the_teachers_response():
    settings = CooperateSettings()
    prompt = reference_prompt(settings, "Write f.", {"thinking": "Hmm, wait. Step 1: x.\n", "answer": "def f(x): ..."})
    assert prompt.startswith("Write f.") and "Hmm, wait. Step 1: x.\ndef f(x): ..." in prompt
    with pytest.raises(ValueError, match="reference_prompt"):
        CooperateSettings(reference_prompt="{prompt} {answer}")
