"""Two byte-level BPE tokenizers trained locally, each with its own chat format and a thinking section.

The teacher's format resembles GPT-OSS's (start/message/end markers), the student's Qwen3's (im_start);
both open the assistant turn with `<think>\\n`, so `apply_chat_template(..., add_generation_prompt=True)`
leaves the model thinking. Every digit is its own token, which the arithmetic needs.
"""

from __future__ import annotations

from pathlib import Path

THINK_START, THINK_END = "<think>", "</think>"


def _template(turn_open: str, turn_close: str) -> str:
    """A chat template rendering assistant reasoning as `<think>\\n...\\n</think>\\n\\n` then the answer."""
    return (
        "{%- for m in messages -%}"
        "{{ '" + turn_open + "' + m['role'] + '" + turn_close[0] + "' }}"
        "{%- if m['role'] == 'assistant' and m.get('reasoning_content') -%}"
        "{{ '<think>\\n' + m['reasoning_content'] + '\\n</think>\\n\\n' }}"
        "{%- endif -%}"
        "{{ m['content'] + '" + turn_close[1] + "' }}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}"
        "{{ '" + turn_open + "assistant" + turn_close[0] + "<think>\\n' }}"
        "{%- endif -%}"
    )


# name -> (special tokens, end-of-turn token, template)
FORMATS = {
    "teacher": (
        ["<|start|>", "<|message|>", "<|end|>", "<|pad|>"],
        "<|end|>",
        _template("<|start|>", ("<|message|>", "<|end|>")),
    ),
    "student": (
        ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        "<|im_end|>",
        _template("<|im_start|>", ("\\n", "<|im_end|>\\n")),
    ),
}


def train_tokenizer(texts: list[str], role: str, vocab_size: int, out_dir: str | Path):
    """Train a byte-level BPE on `texts` and save it as a transformers tokenizer with its chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if role not in FORMATS:
        raise ValueError(f"unknown tokenizer role {role!r}; choose one of {sorted(FORMATS)}")
    specials, eos, template = FORMATS[role]
    specials = specials + [THINK_START, THINK_END]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    pad = "<|pad|>" if "<|pad|>" in specials else "<|endoftext|>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token=pad, additional_special_tokens=[THINK_START, THINK_END],
    )
    fast.chat_template = template
    fast.save_pretrained(str(out_dir))
    return fast
