"""Each model's prompts in its own chat format: the generators' thinking and answer prompts and stops on
tokenizer folders of both families, the toy models' prompts byte-identical to the construction before
formats were detected, and the engine handing a trace between a harmony teacher and a Qwen3 student."""

import pytest

from chat_templates import save_tokenizer_folder
from tessy_dagster.cooperate.engine import CooperativeEngine
from tessy_dagster.cooperate.generation import Generation, LocalTokenizer, vllm_finish_reason
from tessy_dagster.cooperate.hf_backend import HFGenerator
from tessy_dagster.settings import CooperateSettings

U = "Write f(x) that adds 2."


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    for name in ("qwen3", "deepseek_r1", "gpt_oss", "chatml"):
        save_tokenizer_folder(root / name, name)
    return root


def test_a_harmony_generator_thinks_in_the_analysis_channel(folders):
    gen = LocalTokenizer(folders / "gpt_oss")
    assert gen.format.family == "harmony" and gen.think_end == "<|end|>" and gen.stop_strings == ("<|end|>",)
    prompt = gen.thinking_prompt(U)
    assert prompt == gen.chat_prompt(U) + "<|channel|>analysis<|message|>"
    assert prompt.endswith(f"<|start|>user<|message|>{U}<|end|><|start|>assistant<|channel|>analysis<|message|>")
    assert gen.answer_prompt(U, "So add 2.") == prompt + "So add 2.<|end|><|start|>assistant<|channel|>final<|message|>"
    written = "So add 2.<|end|><|start|>assistant<|channel|>final<|message|>def f(x): return x + 2<|return|>"
    assert gen.format.split(written) == ("So add 2.", "def f(x): return x + 2", True)
    assert gen.format.split("So add 2.") == ("So add 2.", "", False)
    # a server (vLLM) names the stop string that ended the text
    assert vllm_finish_reason("stop", "<|end|>", gen.stop_strings, True) == "think_end"
    assert vllm_finish_reason("stop", None, gen.stop_strings, True) == "stop"


def test_think_family_generators_and_a_model_that_does_not_think(folders):
    qwen3, r1 = LocalTokenizer(folders / "qwen3"), LocalTokenizer(folders / "deepseek_r1")
    assert qwen3.thinking_prompt(U) == qwen3.chat_prompt(U) + "<think>\n"  # Qwen3 leaves <think> to the model
    assert r1.thinking_prompt(U) == r1.chat_prompt(U)  # R1's template opens it
    assert qwen3.think_end == r1.think_end == "</think>"
    with pytest.raises(ValueError, match="chatml: the chat template has no thinking section"):
        LocalTokenizer(folders / "chatml")
    annotator = LocalTokenizer(folders / "chatml", needs_thinking=False)  # an instruct model that only answers
    assert annotator.format is None and annotator.think_end is None and annotator.stop_strings == ()
    assert annotator.chat_prompt(U, thinking=False).endswith("<|im_start|>assistant\n")
    with pytest.raises(ValueError, match="no thinking section"):
        annotator.thinking_prompt(U)


def test_the_toy_models_prompts_are_unchanged(micro_world):
    """What the engine sent before the formats: `chat_prompt(q) + text` and `chat_prompt(q) + thinking +
    "\\n</think>\\n\\n"`; the hf backend still stops at </think> by id."""
    for role in ("teacher", "student"):
        gen = HFGenerator(micro_world[role], batch_size=1)
        assert gen.format.family == "think" and gen.think_end == "</think>"
        assert gen.think_end_id == gen.tokenizer.convert_tokens_to_ids("</think>") and gen.turn_end_ids == []
        old = gen.tokenizer.apply_chat_template([{"role": "user", "content": U}], add_generation_prompt=True,
                                                tokenize=False, enable_thinking=True)
        assert gen.thinking_prompt(U) == old and old.endswith("<think>\n")
        assert gen.answer_prompt(U, "Step 1 adds 2.") == old + "Step 1 adds 2." + "\n</think>\n\n"


class Scripted(LocalTokenizer):
    """A model with a real tokenizer folder (its chat format) that replies from a script, recording prompts."""

    def __init__(self, folder, replies):
        super().__init__(folder)
        self.replies, self.prompts = list(replies), []

    def generate(self, prompts, max_new_tokens, sampling, stop_at_think_end, cache_keys=None):
        self.prompts.extend(prompts)
        return [self.replies.pop(0) for _ in prompts]


class CutAt:
    def __init__(self, offsets):
        self.offsets = list(offsets)

    def switch_starts(self, contexts, chunks, roles):
        return [[offset] if (offset := self.offsets.pop(0)) < len(c) else [] for c in chunks]


def test_the_engine_hands_the_trace_between_a_harmony_teacher_and_a_qwen3_student(folders):
    student = Scripted(folders / "qwen3", [Generation("Okay so step one", 4, "length"),
                                           Generation("def f(x): return x + 2", 8, "stop")])
    teacher = Scripted(folders / "gpt_oss", [Generation(" adds 2.", 3, "think_end")])
    settings = CooperateSettings(max_retries=0)
    engine = CooperativeEngine({"student": student, "teacher": teacher}, CutAt([8, 100]), settings, {},
                               progress=lambda m: None)
    [row] = engine.run("tessy", [("p1", U)])
    assert row["thinking"] == "Okay so adds 2." and row["answer"] == "def f(x): return x + 2"
    assert [(s["text"], s["author"]) for s in row["spans"]] == [("Okay so", "student"), (" adds 2.", "teacher")]
    # each model saw its own template left in its thinking, continued by the shared text
    assert student.prompts[0] == student.thinking_prompt(U) and student.prompts[0].endswith("assistant\n<think>\n")
    assert teacher.prompts == [teacher.thinking_prompt(U) + "Okay so"]
    assert teacher.prompts[0].endswith("<|start|>assistant<|channel|>analysis<|message|>Okay so")
    # the student answers after closing thinking its own way
    assert student.prompts[1] == student.thinking_prompt(U) + "Okay so adds 2.\n</think>\n\n"
