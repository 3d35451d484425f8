import random

from tessy_dagster.toyworld import tasks


def _run(code: str, x: int) -> int:
    namespace: dict = {}
    exec(code, namespace)
    return namespace[tasks.FUNCTION_NAME](x)


def test_generation_is_seeded_and_follows_the_step_mix():
    a = tasks.generate_problems(100, (0.2, 0.3, 0.5), 7, 4, 20, "train")
    b = tasks.generate_problems(100, (0.2, 0.3, 0.5), 7, 4, 20, "train")
    assert [p.problem_id for p in a] == [p.problem_id for p in b]
    counts = [sum(p.n_steps == n for p in a) for n in (1, 2, 3)]
    assert counts == [20, 30, 50]


def test_solutions_pass_their_hidden_tests_and_prompts_describe_every_step():
    for p in tasks.generate_problems(60, (1 / 3, 1 / 3, 1 / 3), 1, 6, 30, "train"):
        assert all(_run(p.solution, x) == y for x, y in p.tests)
        assert p.prompt.count(", then ") == p.n_steps - 1
        assert len({x for x, _ in p.tests}) == 6


def test_heldout_three_step_problems_avoid_training_signatures():
    train = tasks.generate_problems(300, (0.0, 0.0, 1.0), 0, 4, 20, "train")
    seen = {tasks.signature(p.steps) for p in train}
    held = tasks.heldout_problems(30, 0, 4, 20, seen)
    assert all(tasks.signature(p.steps) not in seen for p in held if p.n_steps == 3)
    assert [sum(p.n_steps == n for p in held) for n in (1, 2, 3)] == [30, 30, 30]


def test_trace_has_one_style_marker_per_step_plus_the_code_line():
    p = tasks.Problem("p", (("add", 3), ("square", 0)), ((1, 16),))
    spans = tasks.write_trace(p, tasks.TEACHER_LEXICON, random.Random(0))
    style = [s for s in spans if s.kind == "style"]
    assert len(style) == 3
    assert all(s.text.strip() in tasks.TEACHER_LEXICON for s in style)
    text = tasks.trace_text(spans)
    assert "((x + 3) ** 2)" in text and text.endswith("Code: return ((x + 3) ** 2)")


def test_lexicons_share_no_word():
    words = lambda lex: {w.strip(",.:").lower() for phrase in lex for w in phrase.split()}  # noqa: E731
    assert not words(tasks.TEACHER_LEXICON) & words(tasks.STUDENT_LEXICON)


def test_a_share_of_markers_comes_from_the_foreign_lexicon():
    rng = random.Random(0)
    problems = tasks.generate_problems(200, (0.0, 0.0, 1.0), 0, 4, 20, "train")
    styles = [s.text.strip() for p in problems
              for s in tasks.write_trace(p, tasks.TEACHER_LEXICON, rng, tasks.STUDENT_LEXICON, 0.1)
              if s.kind == "style"]
    foreign = sum(s in tasks.STUDENT_LEXICON for s in styles) / len(styles)
    assert 0.05 < foreign < 0.15
