"""Style-marker rates: how often each model's discourse markers appear, per 100 words of thinking."""

from __future__ import annotations

from ..boundary.windows import lexicon_spans
from ..toyworld.tasks import STUDENT_LEXICON, TEACHER_LEXICON


def marker_rates(text: str, teacher_lexicon=TEACHER_LEXICON, student_lexicon=STUDENT_LEXICON) -> tuple[float, float]:
    """(teacher-lexicon markers, student-lexicon markers) per 100 words; (0, 0) for empty text."""
    words = len(text.split())
    if not words:
        return 0.0, 0.0
    spans = lexicon_spans(text, tuple(teacher_lexicon) + tuple(student_lexicon))
    teacher = set(teacher_lexicon)
    n_teacher = sum(1 for s, e in spans if text[s:e] in teacher)
    return 100.0 * n_teacher / words, 100.0 * (len(spans) - n_teacher) / words
