import random

from tessy_dagster.boundary.dataset import mixed_windows
from tessy_dagster.boundary.windows import cut_windows, lexicon_spans, shift_left, splice_style, style_runs, token_is_style

TEXT = "Hmm, wait. Step 1 adds 3: (x + 3).\nNow then, Step 2 squares it: ((x + 3) ** 2)."


def test_windows_are_word_aligned_slices_and_short_responses_are_skipped():
    windows = cut_windows(TEXT, source_model="teacher", response_id="r", window_words=5, max_windows=3,
                          rng=random.Random(0))
    assert len(windows) == 3
    for w in windows:
        assert len(w.text.split()) == 5 and w.text in TEXT and w.source_model == "teacher"
    assert cut_windows("too short", source_model="s", response_id="r", window_words=5, max_windows=3,
                       rng=random.Random(0)) == []


def test_lexicon_spans_are_ordered_offsets_without_overlap():
    spans = lexicon_spans(TEXT, ("Hmm, wait.", "Hmm,", "Now then,"))
    assert [TEXT[s:e] for s, e in spans] == ["Hmm, wait.", "Now then,"]


def test_token_labels_follow_the_first_character_and_shift_left():
    # tokens: "Hmm" (0,3) "," (3,4) "Step" (5,9) "1" (10,11); style span covers "Hmm,"
    offsets = [(0, 3), (3, 4), (5, 9), (10, 11)]
    labels = token_is_style(offsets, [(0, 4)])
    assert labels == [1, 1, 0, 0]
    assert shift_left(labels) == [1, 0, 0, -100]
    # a span that starts inside a token marks that token
    assert token_is_style([(0, 6)], [(2, 4)]) == [1]


def test_splice_style_moves_the_labels_with_the_spans():
    text = "Hmm, wait. Step 1 adds 3: (x + 3).\nLet me think. Code: return (x + 3)"
    spans = [(0, 10), (35, 48)]
    spliced, new = splice_style(text, spans, ["Now then,"], random.Random(0))
    assert spliced == "Now then, Step 1 adds 3: (x + 3).\nNow then, Code: return (x + 3)"
    assert [spliced[s:e] for s, e in new] == ["Now then,", "Now then,"]
    assert splice_style(text, [], ["Now then,"], random.Random(0)) == (text, [])


def test_mixed_windows_are_teacher_windows_in_the_students_style():
    teacher = {"window_id": "teacher:p1:0", "source_model": "teacher", "response_id": "teacher:p1", "start_word": 0,
               "text": "Hmm, wait. Step 1 adds 3: (x + 3).", "annotator": "lexicon",
               "style_spans": [{"start": 0, "end": 10}]}
    student = {"window_id": "student:p1:0", "source_model": "student", "response_id": "student:p1", "start_word": 0,
               "text": "Next up, Step 1 adds 3: (x + 3).", "annotator": "lexicon",
               "style_spans": [{"start": 0, "end": 8}]}
    mixed = mixed_windows([teacher, student], share=2.0, seed=0)
    assert len(mixed) == 2
    for row in mixed:
        assert row["text"] == "Next up, Step 1 adds 3: (x + 3)."
        assert row["style_spans"] == [{"start": 0, "end": 8}]
        assert row["source_model"] == "mixed" and row["response_id"] == "teacher:p1"  # beside its source in the split
    assert len({row["window_id"] for row in mixed}) == 2
    assert mixed_windows([teacher, student], share=0.0, seed=0) == []
    assert mixed_windows([teacher], share=1.0, seed=0) == []  # no student style to splice in


def test_style_runs_merge_spans_with_only_whitespace_between():
    text = "Hmm, wait. Step 1. Okay, right."
    assert style_runs(text, [(0, 4), (5, 10), (19, 24), (25, 31)]) == [(0, 10), (19, 31)]
    spliced, spans = splice_style(text, [(0, 4), (5, 10), (19, 24), (25, 31)], ["Next up,"], random.Random(0))
    assert spliced == "Next up, Step 1. Next up," and spans == [(0, 8), (17, 25)]
