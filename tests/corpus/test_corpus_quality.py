"""The corpus quality filters as plain functions: structure, duplicates, decontamination."""

import json

import pytest

from tessy_dagster.corpus.quality import (BenchmarkIndex, asks_for_code, contamination, find_duplicates,
                                          structure_problem, words)

TOY_TESTS = json.dumps({"function_name": "f", "cases": [[1, 2]]})
HUMANEVAL_TESTS = json.dumps({"prompt": "def g(x):\n", "test": "def check(c): pass", "entry_point": "g"})
LCB_TESTS = json.dumps({"mode": "stdin", "cases": [], "timeout_s": 6})
MATH_TESTS = json.dumps({"answer": "42"})


def test_words_drop_case_and_punctuation_but_keep_operators():
    assert words("Step 1: (x + 2), THEN  step 2.") == ["step", "1", "x", "+", "2", "then", "step", "2"]
    assert words("return (x - 2)") != words("return (x + 2)")


# ---- structure ---------------------------------------------------------------------------------------------

def test_which_prompts_ask_for_code():
    for tests in (TOY_TESTS, HUMANEVAL_TESTS, LCB_TESTS):
        assert asks_for_code("Solve it.", tests)  # the tests decide, whatever the wording
    assert not asks_for_code("Write a Python function that returns 42.", MATH_TESTS)
    # no tests (or tests of no known kind): the keyword rule
    assert asks_for_code("Write a Python function f(x) that adds 1.", "")
    assert asks_for_code("Implement the class below.", json.dumps({"other": 1}))
    assert not asks_for_code("What is 6 times 7?", "")
    assert not asks_for_code("Let f be a function with f(1) = 2. Find f(2).", None)


@pytest.mark.parametrize("thinking, answer, where", [
    ("Step 1.</think>\n<think>Step 2.", "def f(x): return x", "'</think>' in the thinking"),
    ("Step 1. <think>again", "def f(x): return x", "'<think>' in the thinking"),
    ("Step 1.<|end|><|start|>assistant<|channel|>analysis<|message|>more", "def f(x): return x",
     "'<|end|>' in the thinking"),
    ("Step 1.", "<think>second thoughts</think> def f(x): return x", "'<think>' in the answer"),
    ("Step 1.", "def f(x): return x<|return|>", "'<|return|>' in the answer"),
])
def test_a_second_thinking_section_of_either_format_is_dropped(thinking, answer, where):
    assert structure_problem(thinking, answer, asks_code=True) == ("extra_thinking_section", where)
    assert structure_problem(thinking, answer, asks_code=False, one_thinking_section=False) is None


def test_code_blocks_where_the_prompt_asks_for_code():
    fenced, bare = "Here:\n```python\ndef f(x):\n    return x\n```", "def f(x):\n    return x + 1"
    prose = "The function adds one to x."
    assert structure_problem("ok", fenced, True, code_block="fenced") is None
    assert structure_problem("ok", bare, True, code_block="fenced")[0] == "no_code_block"
    assert structure_problem("ok", bare, True, code_block="fenced_or_bare") is None
    # form, not correctness: a bare definition that does not parse is still code (the verifier judges it)
    assert structure_problem("ok", "def f(x):\n    return ((x - 1)", True, code_block="fenced_or_bare") is None
    assert structure_problem("ok", "import os\n\nclass A:\n    pass", True, code_block="fenced_or_bare") is None
    assert structure_problem("ok", prose, True, code_block="fenced_or_bare")[0] == "no_code_block"
    assert structure_problem("ok", "x = 1", True, code_block="fenced_or_bare")[0] == "no_code_block"  # defines nothing
    assert structure_problem("ok", prose, True, code_block="off") is None
    assert structure_problem("ok", prose, False, code_block="fenced") is None  # no code asked for


# ---- duplicates ----------------------------------------------------------------------------------------------

WORDS = [f"w{i}" for i in range(100)]


def test_exact_duplicates_up_to_case_punctuation_and_spacing_keep_the_first():
    found = find_duplicates([("a", "Step 1: adds 2."), ("b", "step 1 ADDS   2"), ("c", "step 1 adds 3")])
    assert set(found) == {"b"} and found["b"].reason == "duplicate_exact" and found["b"].of == "a"


def test_near_duplicates_at_the_threshold_boundary():
    """Single-word shingles make the Jaccard exact by construction: 90 of 100 words is 0.90, 89 is 0.89."""
    at = find_duplicates([("a", " ".join(WORDS)), ("b", " ".join(WORDS[:90]))], threshold=0.9, shingle_words=1)
    assert at["b"].reason == "near_duplicate" and at["b"].of == "a" and at["b"].jaccard == pytest.approx(0.9)
    below = find_duplicates([("a", " ".join(WORDS)), ("c", " ".join(WORDS[:89]))], threshold=0.9, shingle_words=1)
    assert below == {}


def test_later_rows_are_compared_with_the_kept_ones_only():
    texts = [("a", " ".join(WORDS)), ("b", " ".join(WORDS[:90])), ("c", " ".join(WORDS[:89]))]
    found = find_duplicates(texts, threshold=0.9, shingle_words=1)
    # b duplicates a and is dropped; c is 0.99 like b but only 0.89 like a, the row that stays: c stays
    assert set(found) == {"b"}
    assert set(find_duplicates(texts, threshold=0.9, shingle_words=1, near=False)) == set()


def test_near_duplicates_with_five_word_shingles():
    base = " ".join(WORDS)
    one_changed = " ".join(WORDS[:50] + ["other"] + WORDS[51:])  # 5 of 96 shingles change: Jaccard 91/101
    found = find_duplicates([("a", base), ("b", one_changed)], threshold=0.9)
    assert found["b"].reason == "near_duplicate" and found["b"].jaccard == pytest.approx(91 / 101)
    assert find_duplicates([("a", base), ("b", one_changed)], threshold=0.95) == {}


# ---- decontamination -----------------------------------------------------------------------------------------

TEMPLATE = "Write a Python function f(x) that transforms x in order: step 1 "
SUITE = [("toy", f"p{i}", TEMPLATE + step + ".") for i, step in enumerate((
    "adds 2, then step 2 squares it, then step 3 multiplies by 5 and finally reports the total of all",
    "negates it", "subtracts 4, then step 2 takes the absolute value",
    "squares it, then step 2 adds 9", "multiplies by 3"))]
OTHER = [("math", "m1", "A train leaves the station at noon travelling at sixty miles per hour towards the coast "
                        "where it meets a second train"), ("math", "m2", "What is 6 times 7?")]


def test_a_suites_wording_is_not_contamination():
    index = BenchmarkIndex(SUITE + OTHER, n=8, template_share=0.2)
    assert index.template_ngrams("toy") > 0 and index.template_ngrams("math") == 0
    # the toy template (in every problem) with other content: clean
    assert contamination(index, [("prompt", TEMPLATE + "integer-divides by 2, then step 2 adds 7.")]) is None
    # the same words without the template rule are an 8-gram overlap with every toy problem
    no_rule = BenchmarkIndex(SUITE, n=8, template_share=1.0)
    assert contamination(no_rule, [("prompt", TEMPLATE + "integer-divides by 2, then step 2 adds 7.")]) is not None


def test_content_overlap_is_contamination_per_suite():
    index = BenchmarkIndex(SUITE + OTHER, n=8, template_share=0.2)
    hit = contamination(index, [("prompt", "Unrelated words here."),
                                ("thinking", "So: then step 2 squares it, then step 3 multiplies by 5 and so on")])
    assert (hit.suite, hit.problem_id, hit.field) == ("toy", "p0", "thinking")
    assert hit.ngram == "then step 2 squares it then step 3"  # the first shared 8-gram
    hit = contamination(index, [("prompt", "Quiz: a train leaves the station at noon travelling at sixty miles")])
    assert (hit.suite, hit.problem_id) == ("math", "m1")


def test_short_problems_match_only_whole():
    index = BenchmarkIndex(SUITE + OTHER, n=8, template_share=0.2)
    # "what is 6 times 7" is shorter than 8 words: one n-gram of its own, matched by the same words only
    assert contamination(index, [("prompt", "what is 6 TIMES 7")]).problem_id == "m2"
    assert contamination(index, [("prompt", "What is 6 times 7? Then add 1 to it please.")]) is None
    # a toy problem whose content is one short step: its whole text is the problem, template and all
    assert contamination(index, [("prompt", TEMPLATE + "negates it.")]).problem_id == "p1"
    assert contamination(index, [("prompt", TEMPLATE + "negates it, then step 2 adds 1.")]) is None


def test_n_is_a_setting():
    text = [("prompt", "the station at noon travelling at sixty miles per")]  # 10 words of m1
    assert contamination(BenchmarkIndex(OTHER, n=8), text) is not None
    assert contamination(BenchmarkIndex(OTHER, n=13), text) is None
