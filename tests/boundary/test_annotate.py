import pytest

from tessy_dagster.boundary.annotate import (ANNOTATION_PROMPT, REJECTION_REASONS, LexiconAnnotator, LLMAnnotator,
                                             Rejected, align_reply, load_annotator)
from tessy_dagster.cooperate.generation import Generation
from tessy_dagster.settings import BoundarySettings

TEXT = "Okay, so the sum is 4. Wait, let me check: so 2 + 2 = 4."


def _reason(reply: str, text: str = TEXT) -> str:
    with pytest.raises(Rejected) as err:
        align_reply(text, reply)
    assert err.value.reason in REJECTION_REASONS
    return err.value.reason


def test_a_good_reply_is_aligned_in_order_with_end_exclusive_offsets():
    spans = align_reply(TEXT, '["Okay, so", "Wait, let me check:"]')
    assert [TEXT[s:e] for s, e in spans] == ["Okay, so", "Wait, let me check:"]
    assert align_reply(TEXT, "[]") == []


def test_repeated_spans_need_repeated_occurrences():
    spans = align_reply(TEXT, '["so", "so"]')
    assert [s for s, _ in spans] == [TEXT.index("so"), TEXT.index("so", TEXT.index("so") + 1)]
    assert _reason('["Okay", "Okay"]') == "span_not_found"


def test_spans_out_of_order_are_not_found():
    assert _reason('["Wait,", "Okay,"]') == "span_not_found"


@pytest.mark.parametrize("reply, reason", [
    ('["Okay, so"', "not_json"),
    ("Sure! Here are the phrases: Okay", "not_json"),
    ("", "not_json"),
    ('{"spans": ["Okay"]}', "not_a_list"),
    ('"Okay"', "not_a_list"),
    ('["Okay", 3]', "not_a_string"),
    ('["Okay", ""]', "empty_span"),
    ('["   "]', "empty_span"),
    ('["hmm"]', "span_not_found"),
    ('["okay, so"]', "span_not_found"),  # verbatim: case matters
])
def test_bad_replies_are_rejected_with_their_reason(reply, reason):
    assert _reason(reply) == reason


def test_a_code_fence_and_a_thinking_block_around_the_json_are_tolerated():
    assert align_reply(TEXT, '```json\n["Okay,"]\n```') == [(0, 5)]
    assert align_reply(TEXT, '<think>\nthe phrases are\n</think>\n\n["Okay,"]') == [(0, 5)]


class WrittenReplies:
    """A generator that answers with written replies, to test the annotator's bookkeeping."""

    def __init__(self, replies):
        self.replies, self.prompts = replies, []

    def chat_prompt(self, user, thinking=True):
        assert thinking is False
        return f"<user>{user}</user>"

    def generate(self, prompts, max_new_tokens, sampling, stop_at_think_end, cache_keys=None):
        assert sampling.temperature == 0.0 and not stop_at_think_end
        self.prompts.extend(prompts)
        return [Generation(r, len(r.split()), "stop") for r in self.replies[:len(prompts)]]


def test_the_llm_annotator_keeps_every_reply_and_rejects_windows_whole():
    texts = [TEXT, TEXT, "Step 1 adds 2."]
    generator = WrittenReplies(['["Okay, so"]', '["Okay, so", "nope"]', "[]"])
    annotations = LLMAnnotator(generator, 32).annotate(texts)
    assert annotations[0].spans == [(0, 8)] and annotations[0].reply == '["Okay, so"]'
    assert annotations[1].spans is None and annotations[1].reason == "span_not_found"
    assert annotations[1].reply == '["Okay, so", "nope"]'
    assert annotations[2].spans == []
    assert generator.prompts[2].endswith(ANNOTATION_PROMPT.format(text="Step 1 adds 2.") + "</user>")


def test_the_lexicon_annotator_and_its_settings():
    [annotation] = LexiconAnnotator(("wait,", "okay,")).annotate([TEXT])
    assert [TEXT[s:e] for s, e in annotation.spans] == ["Okay,", "Wait,"]
    annotator = load_annotator(BoundarySettings(lexicon=("so",)))
    assert annotator.name == "lexicon" and annotator.lexicon == ("so",)
    with pytest.raises(ValueError, match="boundary.lexicon"):  # a team's files come with no lexicon
        load_annotator(BoundarySettings())
    with pytest.raises(ValueError, match="annotator_model"):
        BoundarySettings(annotator="llm")


def test_the_llm_annotator_on_a_tiny_model_never_crashes(micro_world):
    """Whatever the micro teacher replies is parsed and counted."""
    settings = BoundarySettings(annotator="llm", annotator_model=str(micro_world["teacher"]),
                                annotator_max_new_tokens=16)
    annotator = load_annotator(settings)
    annotations = annotator.annotate([TEXT, "Step 1 adds 2: (x + 2)."])
    assert len(annotations) == 2
    for a in annotations:
        assert (a.spans is None) == bool(a.reason) and (a.reason in REJECTION_REASONS or a.reason == "")
