"""Windows of whitespace-separated words, and the lexicon annotator that marks their style spans."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Window:
    source_model: str  # "teacher" or "student": who wrote the response
    response_id: str
    start_word: int
    text: str  # the original text from the first word's start to the last word's end


def cut_windows(text: str, *, source_model: str, response_id: str, window_words: int, max_windows: int,
                rng: random.Random) -> list[Window]:
    """Up to `max_windows` distinct random windows of `window_words` words; shorter responses give none."""
    words = list(_WORD.finditer(text))
    if len(words) < window_words:
        return []
    starts = list(range(len(words) - window_words + 1))
    chosen = sorted(rng.sample(starts, min(max_windows, len(starts))))
    return [
        Window(source_model, response_id, s, text[words[s].start():words[s + window_words - 1].end()])
        for s in chosen
    ]


def lexicon_spans(text: str, lexicon: tuple[str, ...]) -> list[tuple[int, int]]:
    """Character spans (end exclusive) of every lexicon phrase in `text`: case-insensitive, whole words only
    ("so" never matches inside "also"), longest phrase first, no overlaps."""
    taken = [False] * len(text)
    spans = []
    for phrase in sorted(set(lexicon), key=len, reverse=True):
        before = r"(?<!\w)" if phrase[:1].isalnum() else ""
        after = r"(?!\w)" if phrase[-1:].isalnum() else ""
        for m in re.finditer(before + re.escape(phrase) + after, text, flags=re.IGNORECASE):
            if not any(taken[m.start():m.end()]):
                spans.append((m.start(), m.end()))
                for i in range(m.start(), m.end()):
                    taken[i] = True
    return sorted(spans)


def token_is_style(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    """1 where a token's first non-space character lies in a style span, or a span starts inside it."""
    labels = []
    for start, end in offsets:
        style = any(s <= start < e or start <= s < max(end, start + 1) for s, e in spans)
        labels.append(int(style))
    return labels


def word_index_of_chars(text: str, offsets: list[tuple[int, int]]) -> list[int | None]:
    """For each token (character offsets into `text`): the index of the word holding its first visible
    character, or None for a token of whitespace only."""
    word_at = [None] * len(text)
    for index, m in enumerate(_WORD.finditer(text)):
        for i in range(m.start(), m.end()):
            word_at[i] = index
    return [next((word_at[i] for i in range(max(0, start), min(end, len(text))) if word_at[i] is not None), None)
            for start, end in offsets]


def shift_left(labels: list[int]) -> list[int]:
    """Position j learns whether token j+1 is style; the last position has no target (-100)."""
    return labels[1:] + [-100]


def style_runs(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Style spans with only whitespace between them merged: one run of style text ("Hmm," "wait." is the
    run "Hmm, wait.")."""
    runs: list[list[int]] = []
    for start, end in sorted(spans):
        if runs and not text[runs[-1][1]:start].strip():
            runs[-1][1] = max(runs[-1][1], end)
        else:
            runs.append([start, end])
    return [(s, e) for s, e in runs]


def splice_style(text: str, spans: list[tuple[int, int]], donor_styles: list[str],
                 rng: random.Random) -> tuple[str, list[tuple[int, int]]]:
    """`text` with each run of style text (`style_runs`) replaced by one drawn from `donor_styles` (another
    model's runs), and the new spans, one per run. A teacher window spliced with the student's style runs is
    the text the cooperative engine shows both predictors: the student's style between the teacher's
    capability."""
    out, new_spans, last = [], [], 0
    length = 0
    for start, end in style_runs(text, spans):
        out.append(text[last:start])
        length += start - last
        donor = rng.choice(donor_styles)
        new_spans.append((length, length + len(donor)))
        out.append(donor)
        length += len(donor)
        last = end
    out.append(text[last:])
    return "".join(out), new_spans
