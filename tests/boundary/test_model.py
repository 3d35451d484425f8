import random

import pytest

from tessy_dagster.boundary.model import BoundaryPredictor, label_windows, train_boundary_model
from tessy_dagster.boundary.windows import cut_windows, lexicon_spans
from tessy_dagster.settings import BoundarySettings
from tessy_dagster.toyworld import tasks
from tessy_dagster.toyworld.tokenizers import train_tokenizer


def _traces(n, seed=0):
    rng = random.Random(seed)
    problems = tasks.generate_problems(n, (0.2, 0.3, 0.5), seed, 4, 20, "train")
    lexicons = (tasks.TEACHER_LEXICON, tasks.STUDENT_LEXICON)
    return [tasks.trace_text(tasks.write_trace(p, lexicons[i % 2], rng)) for i, p in enumerate(problems)]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    texts = _traces(200)
    root = tmp_path_factory.mktemp("toks")
    return train_tokenizer(texts, "teacher", 380, root / "t"), train_tokenizer(texts, "student", 420, root / "s")


def test_labels_agree_across_two_tokenizers(tokenizers):
    text = "Hmm, wait. Step 1 adds 3: (x + 3).\nNow then, Code: return (x + 3)"
    spans = lexicon_spans(text, tasks.STYLE_LEXICON)
    for tok in tokenizers:
        [window] = label_windows(tok, [text], [spans])
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        # shifted labels, read back at the token they describe, mark exactly the marker characters
        styled = "".join(text[s:e] for (s, e), label in zip(enc["offset_mapping"][1:], window.labels) if label == 1)
        first_token = text[slice(*enc["offset_mapping"][0])]  # position -1 would predict it: no label
        assert styled.replace(" ", "") == "Hmm,wait.Nowthen,"[len(first_token):]
        assert window.labels[-1] == -100


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizers):
    tok = tokenizers[1]
    rng = random.Random(1)
    windows = [w for i, t in enumerate(_traces(300, seed=1))
               for w in cut_windows(t, source_model="x", response_id=str(i), window_words=20, max_windows=2, rng=rng)]
    labelled = label_windows(tok, [w.text for w in windows], [lexicon_spans(w.text, tasks.STYLE_LEXICON)
                                                               for w in windows])
    settings = BoundarySettings(hidden_size=64, num_layers=2, num_heads=2, epochs=6, learning_rate=3e-3)
    out = tmp_path_factory.mktemp("boundary")
    metrics = train_boundary_model(tok, labelled, settings, out, progress=lambda m: None)
    return out, metrics


def test_training_reports_validation_metrics_and_learns_the_style(trained):
    _, metrics = trained
    assert metrics["validation_windows"] >= 1 and metrics["tokens"] > 0
    assert metrics["true_style"] + metrics["missed_style"] > 0
    assert metrics["style_f1"] > 0.8, metrics


def test_predictor_cuts_student_at_capability_and_teacher_at_style(trained):
    out, _ = trained
    predictor = BoundaryPredictor(out, context_tokens=20)
    # after a finished line the next token is style (the student's turn); after a marker, capability
    context = "Hmm, wait. Step 1 adds 3: (x + 3).\n"
    student_chunk = "Now then, Step 2 squares"
    teacher_chunk = "Step 2 squares it: ((x + 3) ** 2).\nNow then,"
    cuts = predictor.cuts([context, context + "Now then, "], [student_chunk, teacher_chunk], ["student", "teacher"])
    assert student_chunk[:cuts[0]].strip() == "Now then,"
    assert teacher_chunk[:cuts[1]].strip() == "Step 2 squares it: ((x + 3) ** 2)."
    # a chunk entirely in the role's own kind runs to its end
    assert predictor.cuts([context + "Now then, "], ["Step 2 squares"], ["teacher"]) == [len("Step 2 squares")]
    assert predictor.cuts([context], ["Step 2"], ["teacher"]) == [0]


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        BoundaryPredictor(tmp_path)
