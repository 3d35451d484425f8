"""Style-marker rates: how often each model's discourse markers appear, per 100 words of thinking.

Only where a lexicon exists (the toy world's, or one a team configures under `lexicons`): an extra beside
the model-based drift metrics, which need none.
"""

from __future__ import annotations

from ..boundary.windows import lexicon_spans
from ..settings import StyleLexicons


def marker_rates(text: str, lexicons: StyleLexicons) -> tuple[float, float]:
    """(teacher-lexicon markers, student-lexicon markers) per 100 words; (0, 0) for empty text."""
    words = len(text.split())
    if not words:
        return 0.0, 0.0
    spans = lexicon_spans(text, tuple(lexicons.teacher) + tuple(lexicons.student))
    teacher = set(lexicons.teacher)
    n_teacher = sum(1 for s, e in spans if text[s:e] in teacher)
    return 100.0 * n_teacher / words, 100.0 * (len(spans) - n_teacher) / words
