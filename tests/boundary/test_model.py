import random

import pytest

from tessy_dagster.boundary.model import (BoundaryPredictor, Cut, LabelledWindow, label_windows, new_classifier,
                                          split_by_response, switch_cases, train_predictor)
from tessy_dagster.boundary.windows import cut_windows, lexicon_spans
from tessy_dagster.settings import BoundarySettings
from tessy_dagster.toyworld import tasks
from tessy_dagster.toyworld.tokenizers import train_tokenizer


def _traces(n, lexicon, seed=0):
    """Traces in one lexicon, with a share of the other's markers, as the toy models write them."""
    rng = random.Random(seed)
    problems = tasks.generate_problems(n, (0.2, 0.3, 0.5), seed, 4, 20, "train")
    other = tasks.STUDENT_LEXICON if lexicon == tasks.TEACHER_LEXICON else tasks.TEACHER_LEXICON
    return [tasks.trace_text(tasks.write_trace(p, lexicon, rng, other, 0.4)) for p in problems]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    texts = _traces(100, tasks.TEACHER_LEXICON) + _traces(100, tasks.STUDENT_LEXICON)
    root = tmp_path_factory.mktemp("toks")
    return train_tokenizer(texts, "teacher", 380, root / "t"), train_tokenizer(texts, "student", 420, root / "s")


def test_labels_agree_across_two_tokenizers(tokenizers):
    text = "Hmm, wait. Step 1 adds 3: (x + 3).\nNow then, Code: return (x + 3)"
    spans = lexicon_spans(text, tasks.STYLE_PHRASES)
    for tok in tokenizers:
        [window] = label_windows(tok, [text], [spans])
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        # shifted labels, read back at the token they describe, mark exactly the marker characters
        styled = "".join(text[s:e] for (s, e), label in zip(enc["offset_mapping"][1:], window.labels) if label == 1)
        first_token = text[slice(*enc["offset_mapping"][0])]  # position -1 would predict it: no label
        assert styled.replace(" ", "") == "Hmm,wait.Nowthen,"[len(first_token):]
        assert window.labels[-1] == -100
        # every token knows its word; "Step" is word 2 in both tokenizations
        step = next(i for i, (s, e) in enumerate(enc["offset_mapping"]) if text[s:e].strip() == "Step")
        assert window.token_words[step] == 2


def test_switch_cases_start_at_every_run_of_the_roles_kind():
    # tokens:        0     1     2     3     4     5     6
    # kind (style):  1     0     0     1     1     0     0     -> labels are shifted left by one
    window = LabelledWindow(input_ids=list(range(7)), labels=[0, 0, 1, 1, 0, 0, -100],
                            token_words=[0, 1, 2, 3, 4, 5, 6])
    # teacher (keeps capability 0): runs start at tokens 1 and 5; true switches at words 3 and none
    perfect = window.labels[:-1] + [0]
    assert switch_cases(window, perfect, keep=0) == [(3, 3), (None, None)]
    late = [0, 0, 0, 1, 0, 0, 0]  # predicts style one token late
    assert switch_cases(window, late, keep=0) == [(3, 4), (None, None)]
    # student (keeps style 1): one run, starting at token 3, which switches at word 5
    assert switch_cases(window, perfect, keep=1) == [(5, 5)]
    never = [1] * 7
    assert switch_cases(window, never, keep=1) == [(5, None)]


def test_the_split_is_by_response_and_complains_when_too_small():
    rows = [{"response_id": f"r{i // 3}", "text": ""} for i in range(30)]
    train, val, test = split_by_response(rows, 0.1, 0.2, seed=0)
    ids = [{r["response_id"] for r in part} for part in (train, val, test)]
    assert len(ids[1]) == 1 and len(ids[2]) == 2 and not (ids[0] & ids[1]) and not (ids[0] & ids[2])
    assert len(train) + len(val) + len(test) == 30
    with pytest.raises(ValueError, match="n_traces_per_model"):
        split_by_response(rows[:6], 0.1, 0.1, seed=0)


def _rows(role, lexicon, n, seed):
    rng = random.Random(seed)
    rows = []
    for i, text in enumerate(_traces(n, lexicon, seed)):
        for w in cut_windows(text, source_model=role, response_id=f"{role}:{i}", window_words=20, max_windows=2,
                             rng=rng):
            rows.append({"response_id": w.response_id, "text": w.text,
                         "style_spans": [{"start": s, "end": e} for s, e in lexicon_spans(w.text, tasks.STYLE_PHRASES)]})
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tokenizers):
    tok_dir = tmp_path_factory.mktemp("tok")
    tokenizers[1].save_pretrained(str(tok_dir))
    settings = BoundarySettings(hidden_size=64, num_layers=2, num_heads=2, epochs=6, learning_rate=3e-3)
    out = tmp_path_factory.mktemp("boundary")
    reports = {role: train_predictor(role, _rows(role, lexicon, 150, seed), settings, tok_dir, out / role,
                                     progress=lambda m: None)
               for role, lexicon, seed in (("teacher", tasks.TEACHER_LEXICON, 1), ("student", tasks.STUDENT_LEXICON, 2))}
    return out, reports


def test_both_predictors_learn_the_style_and_report_held_out_metrics(trained):
    _, reports = trained
    assert reports["teacher"]["predictor"] == "B_T" and reports["student"]["predictor"] == "B_S"
    for report in reports.values():
        held_out = report["held_out"]
        assert report["validation_windows"] >= 1 and held_out["evaluated_windows"] >= 1
        assert held_out["true_style"] + held_out["missed_style"] > 0 and held_out["switch_cases"] > 0
        assert held_out["style_f1"] > 0.8, held_out
        assert held_out["switch_exact"] <= held_out["switch_within_one_word"]


def test_predictor_cuts_student_at_capability_and_teacher_at_style(trained):
    out, _ = trained
    predictor = BoundaryPredictor(out, context_tokens=20)
    # after a finished line the next token is style (the student's turn); after a marker, capability
    context = "Hmm, wait. Step 1 adds 3: (x + 3).\n"
    student_chunk = "Now then, Step 2 squares"
    teacher_chunk = "Step 2 squares it: ((x + 3) ** 2).\nHmm, wait."
    cuts = predictor.cuts([context, context + "Now then, "], [student_chunk, teacher_chunk], ["student", "teacher"])
    assert student_chunk[:cuts[0].offset].strip() == "Now then," and cuts[0].next_role == "teacher"
    assert teacher_chunk[:cuts[1].offset].strip() == "Step 2 squares it: ((x + 3) ** 2)."
    assert cuts[1].next_role == "student"
    # a chunk entirely in the role's own kind runs to its end and the role goes on
    assert predictor.cuts([context + "Now then, "], ["Step 2 squares"], ["teacher"]) == [Cut(14, "teacher")]
    assert predictor.cuts([context], ["Step 2"], ["teacher"]) == [Cut(0, "student")]
    with pytest.raises(ValueError, match="unknown role"):
        predictor.cuts(["x"], ["y"], ["annotator"])


def test_a_base_checkpoint_gets_a_fresh_two_class_head(micro_world):
    """The production path: a local causal-LM checkpoint (here the micro student, a Qwen3) as the base."""
    tokenizer, model = new_classifier(BoundarySettings(base_model=str(micro_world["student"])), None)
    assert type(model).__name__ == "Qwen3ForTokenClassification" and model.config.num_labels == 2
    assert tokenizer.pad_token_id is not None
    with pytest.raises(FileNotFoundError, match="base_model"):
        new_classifier(BoundarySettings(base_model=str(micro_world["prompts"])), None)


def test_missing_model_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        BoundaryPredictor(tmp_path)


def _own_rows(role, lexicon, n, seed):
    """Windows of traces in one lexicon only: what the boundary dataset gets from models sampled at the
    engine's temperature and top_p, which leave out the few markers a model learned from the other."""
    rng = random.Random(seed)
    problems = tasks.generate_problems(n, (0.2, 0.3, 0.5), seed, 4, 20, "train")
    rows = []
    for i, p in enumerate(problems):
        text = tasks.trace_text(tasks.write_trace(p, lexicon, rng))
        for w in cut_windows(text, source_model=role, response_id=f"{role}:{i}", window_words=20, max_windows=2,
                             rng=rng):
            rows.append({"window_id": f"{w.response_id}:{w.start_word}", "source_model": role,
                         "response_id": w.response_id, "text": w.text,
                         "style_spans": [{"start": s, "end": e} for s, e in lexicon_spans(w.text, tasks.STYLE_PHRASES)]})
    return rows


def test_b_t_trained_with_mixed_windows_keeps_the_capability_after_a_student_marker(tmp_path, tokenizers):
    """In a cooperative trace every teacher chunk follows one of the student's markers. B_T trained on the
    teacher's own windows only (which hold none of the student's markers) refuses the first capability word
    after some of them (the comma-ending ones look like the first half of a teacher marker, "Hmm, wait.");
    trained with the mixed-author windows (the teacher's windows in the student's style) it keeps the whole
    capability line there, for each of the student's markers."""
    import shutil

    from tessy_dagster.boundary.dataset import mixed_windows

    tok_dir = tmp_path / "tok"
    tokenizers[1].save_pretrained(str(tok_dir))
    teacher = _own_rows("teacher", tasks.TEACHER_LEXICON, 120, 1)
    student = _own_rows("student", tasks.STUDENT_LEXICON, 120, 2)
    mixed = mixed_windows(teacher + student, 1.0, seed=0)
    settings = BoundarySettings(hidden_size=64, num_layers=2, num_heads=2, epochs=6, learning_rate=3e-3)
    quiet = lambda m: None  # noqa: E731
    train_predictor("student", student, settings, tok_dir, tmp_path / "paper" / "student", progress=quiet)
    shutil.copytree(tmp_path / "paper" / "student", tmp_path / "mixed" / "student")
    train_predictor("teacher", teacher, settings, tok_dir, tmp_path / "paper" / "teacher", progress=quiet)
    report = train_predictor("teacher", teacher, settings, tok_dir, tmp_path / "mixed" / "teacher", progress=quiet,
                             mixed_rows=mixed)
    assert report["mixed_windows"] == len(mixed) and report["held_out_mixed"]["evaluated_windows"] >= 1
    line = " Step 2 squares it: ((x + 3) ** 2)."
    contexts = [f"Hmm, wait. Step 1 adds 3: (x + 3).\n{marker.strip()}" for marker in tasks.STUDENT_LEXICON]

    def kept(folder):
        cuts = BoundaryPredictor(folder, context_tokens=20).cuts(contexts, [line] * len(contexts),
                                                                 ["teacher"] * len(contexts))
        return [line[:c.offset] for c in cuts]

    assert any(k != line for k in kept(tmp_path / "paper"))
    assert kept(tmp_path / "mixed") == [line] * len(contexts)
