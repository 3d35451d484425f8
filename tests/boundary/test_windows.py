import random

from tessy_dagster.boundary.windows import cut_windows, lexicon_spans, shift_left, token_is_style

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
