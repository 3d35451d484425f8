"""Thinking formats detected from chat templates: Qwen3's, DeepSeek-R1's, GPT-OSS's harmony, the toy world's,
and the errors for a template without thinking and a tokenizer without a template."""

import datetime as dt

import pytest
from transformers import AutoTokenizer

from chat_templates import TEMPLATES, save_tokenizer_folder
from tessy_dagster.chat_format import (FAMILY_DEFAULTS, THINK, ThinkingFormat, detect_thinking_format,
                                       load_thinking_format, strip_thinking)
from tessy_dagster.toyworld.tokenizers import train_tokenizer
from tessy_dagster.train.sft import encode_chat

U, T, A = "Write f(x) that adds 2.", "Let me think. Step 1 adds 2.", "def f(x):\n    return x + 2"
HARMONY_SYSTEM = ("<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\n"
                  "Knowledge cutoff: 2024-06\nCurrent date: {date}\n\nReasoning: medium\n\n"
                  "# Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat_templates")
    for name in TEMPLATES:
        save_tokenizer_folder(root / name, name)
    save_tokenizer_folder(root / "no_template", "qwen3", template=None)
    return root


@pytest.fixture(scope="module")
def toks(folders):
    return {name: AutoTokenizer.from_pretrained(str(folders / name)) for name in TEMPLATES}


def test_each_family_is_detected_with_its_markers(toks, folders):
    qwen3 = detect_thinking_format(toks["qwen3"], folders / "qwen3")
    assert (qwen3.family, qwen3.think_start, qwen3.think_end) == ("think", "<think>", "</think>")
    assert (qwen3.opener, qwen3.answer_opener, qwen3.turn_end) == ("<think>\n", "\n</think>\n\n", "<|im_end|>")
    assert (qwen3.thinking_field, qwen3.thinking_switch, qwen3.stop_strings) == (
        "reasoning_content", "enable_thinking", ("</think>",))
    r1 = detect_thinking_format(toks["deepseek_r1"], folders / "deepseek_r1")
    assert (r1.family, r1.think_end, r1.opener, r1.answer_opener) == (
        "think", "</think>", "<think>\n", "\n</think>\n\n")
    assert r1.turn_end == "<｜end▁of▁sentence｜>" and r1.thinking_field is None  # R1 drops past thinking
    harmony = detect_thinking_format(toks["gpt_oss"], folders / "gpt_oss")
    assert (harmony.family, harmony.think_start, harmony.think_end) == (
        "harmony", "<|channel|>analysis<|message|>", "<|end|>")
    assert harmony.answer_opener == "<|end|><|start|>assistant<|channel|>final<|message|>"
    assert (harmony.turn_end, harmony.thinking_field, harmony.stop_strings) == ("<|return|>", "thinking", ("<|end|>",))
    assert load_thinking_format(folders / "gpt_oss") == harmony


def test_prompts_leave_each_model_inside_its_thinking(toks, folders):
    fmt = {name: detect_thinking_format(toks[name], folders / name) for name in ("qwen3", "deepseek_r1", "gpt_oss")}
    # Qwen3's generation prompt stops at the assistant's header: the opener is added
    assert fmt["qwen3"].thinking_prompt(toks["qwen3"], U) == (
        f"<|im_start|>user\n{U}<|im_end|>\n<|im_start|>assistant\n<think>\n")
    assert fmt["qwen3"].answer_prompt(toks["qwen3"], U, T) == (
        f"<|im_start|>user\n{U}<|im_end|>\n<|im_start|>assistant\n<think>\n{T}\n</think>\n\n")
    # ... and with thinking off the template closes an empty thinking section itself
    assert fmt["qwen3"].generation_prompt(toks["qwen3"], U, thinking=False).endswith("<think>\n\n</think>\n\n")
    # DeepSeek-R1's already opens <think>: nothing added
    r1 = f"<｜begin▁of▁sentence｜><｜User｜>{U}<｜Assistant｜><think>\n"
    assert fmt["deepseek_r1"].thinking_prompt(toks["deepseek_r1"], U) == r1
    assert fmt["deepseek_r1"].answer_prompt(toks["deepseek_r1"], U, T) == r1 + T + "\n</think>\n\n"
    # harmony: the analysis channel is opened after <|start|>assistant
    prompt = fmt["gpt_oss"].thinking_prompt(toks["gpt_oss"], U)
    today = dt.date.today()  # the template renders the current date; a run may cross midnight
    dates = {HARMONY_SYSTEM.format(date=d.strftime("%Y-%m-%d")) for d in (today, today - dt.timedelta(1))}
    assert any(prompt == system + f"<|start|>user<|message|>{U}<|end|><|start|>assistant<|channel|>analysis<|message|>"
               for system in dates)
    assert fmt["gpt_oss"].answer_prompt(toks["gpt_oss"], U, T) == (
        prompt + T + "<|end|><|start|>assistant<|channel|>final<|message|>")
    # the markers are single tokens of these vocabularies (the hf backend stops on them by id)
    ids = toks["gpt_oss"](prompt, add_special_tokens=False)["input_ids"]
    tokens = toks["gpt_oss"].convert_ids_to_tokens(ids)
    assert tokens[-1] == "<|message|>" and tokens.count("<|channel|>") == 1
    assert "<|end|>" in toks["gpt_oss"].get_vocab() and "</think>" in toks["qwen3"].get_vocab()


@pytest.mark.parametrize("name", ["qwen3", "deepseek_r1", "gpt_oss"])
def test_split_round_trips_what_the_model_writes(toks, folders, name):
    fmt = detect_thinking_format(toks[name], folders / name)
    written = fmt.continuation(fmt.assistant_content(T, A)) + fmt.turn_end  # what follows thinking_prompt
    assert fmt.split(written) == (T, A, True)
    assert fmt.split(T + fmt.answer_opener + A) == (T, A, True)  # stopped before the end of turn
    assert fmt.split("  " + T + " ") == (T, "", False)  # thinking never ended: no answer


def test_harmony_split_takes_the_final_channel_only():
    harmony = ThinkingFormat(family="harmony", turn_end="<|return|>", **FAMILY_DEFAULTS["harmony"])
    # a final message that ends in the history's way (<|end|>) is an answer too
    assert harmony.split(f"{T}<|end|><|start|>assistant<|channel|>final<|message|>{A}<|end|>") == (T, A, True)
    # thinking ended, but no final channel (a commentary message, or nothing): closed, no answer
    assert harmony.split(f"{T}<|end|><|start|>assistant<|channel|>commentary<|message|>x<|end|>") == (T, "", True)
    assert harmony.split(f"{T}<|end|>") == (T, "", True)
    # a final channel still being written when the budget ran out: what there is of it
    assert harmony.split(f"{T}<|end|><|start|>assistant<|channel|>final<|message|>def f") == (T, "def f", True)


def test_sft_records_encode_as_the_templates_render_training_data(toks, folders):
    """The corpus record (assistant_content) after the thinking prompt is what the template renders for an
    assistant turn carrying its thinking field, so SFT trains on the model's own format."""
    for name in ("qwen3", "gpt_oss"):
        tok, fmt = toks[name], detect_thinking_format(toks[name], folders / name)
        ours = fmt.thinking_prompt(tok, U) + fmt.continuation(fmt.assistant_content(T, A)) + fmt.turn_end
        rendered = tok.apply_chat_template([{"role": "user", "content": U}, fmt.assistant_message(T, A)],
                                           tokenize=False)
        assert rendered.rstrip("\n") == ours
        ex = encode_chat(tok, U, fmt.assistant_content(T, A))
        start = ex.loss_mask.index(1)
        assert tok.decode(ex.input_ids[:start]) == fmt.thinking_prompt(tok, U)
        assert tok.decode(ex.input_ids[start:]).endswith(A + fmt.turn_end) and all(ex.loss_mask[start:])
    with pytest.raises(ValueError, match="must start with '<|channel|>analysis<|message|>'"):
        encode_chat(toks["gpt_oss"], U, THINK.assistant_content(T, A))


def test_a_template_without_thinking_and_a_tokenizer_without_template_name_the_folder(folders):
    with pytest.raises(ValueError, match=f"{folders / 'chatml'}: the chat template has no thinking section"):
        load_thinking_format(folders / "chatml")
    with pytest.raises(ValueError, match=f"{folders / 'no_template'}: the tokenizer has no chat template"):
        load_thinking_format(folders / "no_template")
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_thinking_format(folders / "nowhere")


def test_the_toy_templates_are_the_think_family_and_render_as_before(tmp_path):
    """Byte-identical to the construction before formats were detected: `chat_prompt` (which the toy
    templates end with `<think>\\n`), the answer prompt `chat + thinking + "\\n</think>\\n\\n"`, and SFT's
    prompt and continuation, so greedy outputs on the toy models are unchanged."""
    for role in ("teacher", "student"):
        tok = train_tokenizer([f"{U} <think>\n{T}\n</think>\n\n{A}"] * 20, role, 320, tmp_path / role)
        fmt = detect_thinking_format(tok, tmp_path / role)
        assert (fmt.family, fmt.think_end, fmt.opener, fmt.answer_opener) == ("think", "</think>", "<think>\n",
                                                                              "\n</think>\n\n")
        assert fmt.turn_end == tok.eos_token
        old_chat = tok.apply_chat_template([{"role": "user", "content": U}], add_generation_prompt=True,
                                           tokenize=False, enable_thinking=True)
        assert fmt.thinking_prompt(tok, U) == old_chat
        assert fmt.answer_prompt(tok, U, T) == old_chat + T + "\n</think>\n\n"
        assert fmt.assistant_content(T, A) == f"<think>\n{T}\n</think>\n\n{A}"  # toyworld.tasks' record
        old_prefix = tok.apply_chat_template([{"role": "user", "content": U}], add_generation_prompt=True,
                                             tokenize=False)
        record = f"<think>\n{T}\n</think>\n\n{A}"
        old_ids = tok(old_prefix, add_special_tokens=False)["input_ids"] + \
            tok(record[len("<think>\n"):] + tok.eos_token, add_special_tokens=False)["input_ids"]
        assert encode_chat(tok, U, record).input_ids == old_ids


def test_strip_thinking_handles_both_families():
    assert strip_thinking('<think>\nhm\n</think>\n\n["a"]') == '\n\n["a"]'
    assert strip_thinking('["a"]') == '["a"]'
    harmony = '<|channel|>analysis<|message|>hm<|end|><|start|>assistant<|channel|>final<|message|>["a"]<|return|>'
    assert strip_thinking(harmony) == '["a"]'
    assert strip_thinking("<|channel|>analysis<|message|>hm, still thinking") == ""


def test_a_reply_that_opens_thinking_itself_splits_the_same():
    assert THINK.split(f"<think>\n{T}\n</think>\n\n{A}") == (T, A, True)
    harmony = ThinkingFormat(family="harmony", turn_end="<|return|>", **FAMILY_DEFAULTS["harmony"])
    assert harmony.split(f"<|channel|>analysis<|message|>{T}<|end|><|start|>assistant<|channel|>final<|message|>{A}") \
        == (T, A, True)
