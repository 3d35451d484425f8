"""Chat templates of the reasoning-model families TESSY meets, and small tokenizer folders that carry them.

No model hub is reachable here, so these templates are written from knowledge of the real ones' structure,
not copied from the published files: close enough to behave like them on the messages this project
renders (a system or user turn, an assistant turn with or without its thinking, the generation prompt),
not byte-identical, and without the tool-calling branches.
- `qwen3`: Qwen3's template: ChatML turns (`<|im_start|>role\\n ... <|im_end|>\\n`), an assistant's
  `reasoning_content` (or a `<think>` block in its content) rendered as `<think>\\n...\\n</think>\\n\\n`
  only after the last user query, the generation prompt `<|im_start|>assistant\\n` (the model writes
  `<think>\\n` itself), and `<think>\\n\\n</think>\\n\\n` after it when `enable_thinking` is false.
- `deepseek_r1`: DeepSeek-R1's newer template (also its distills'): the BOS token, the system prompt,
  `<｜User｜>...`, `<｜Assistant｜>answer<｜end▁of▁sentence｜>` with any thinking dropped from past turns
  (content after `</think>` only), and a generation prompt that ends `<｜Assistant｜><think>\\n`.
- `gpt_oss`: GPT-OSS's harmony template: a system message (identity, knowledge cutoff, current date via
  `strftime_now`, `Reasoning: medium` unless `reasoning_effort` says otherwise, the valid channels), a
  developer message for a system prompt, `<|start|>user<|message|>...<|end|>`, an assistant's
  `thinking` rendered as the analysis channel only for a last assistant turn without the generation prompt
  (training), its content as the final channel ending `<|return|>` there and `<|end|>` in the history, and
  the generation prompt `<|start|>assistant` (the model picks its channel).
- `chatml`: plain ChatML with no thinking section at all (an instruct model).
"""

from __future__ import annotations

from pathlib import Path

QWEN3 = """\
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
            {%- endif %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}
"""

DEEPSEEK_R1 = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, system_prompt='', is_first_sp=true) %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}{%- if ns.is_first_sp %}"
    "{% set ns.system_prompt = ns.system_prompt + message['content'] %}{% set ns.is_first_sp = false %}"
    "{%- else %}{% set ns.system_prompt = ns.system_prompt + '\\n\\n' + message['content'] %}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{{ bos_token }}{{ ns.system_prompt }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{%- if ns.is_tool %}{{'<｜tool▁outputs▁end｜>' + message['content'] + '<｜end▁of▁sentence｜>'}}"
    "{%- set ns.is_tool = false -%}"
    "{%- else %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endif %}"
    "{%- endfor -%}"
    "{% if ns.is_tool %}{{'<｜tool▁outputs▁end｜>'}}{% endif %}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜><think>\\n'}}{% endif %}"
)

GPT_OSS = """\
{#- Harmony, as GPT-OSS renders it (tool definitions left out). #}
{%- macro build_system_message() -%}
    {%- if model_identity is not defined %}
        {%- set model_identity = "You are ChatGPT, a large language model trained by OpenAI." %}
    {%- endif %}
    {{- model_identity + "\\n" }}
    {{- "Knowledge cutoff: 2024-06\\n" }}
    {{- "Current date: " + strftime_now("%Y-%m-%d") + "\\n\\n" }}
    {%- if reasoning_effort is not defined %}
        {%- set reasoning_effort = "medium" %}
    {%- endif %}
    {{- "Reasoning: " + reasoning_effort + "\\n\\n" }}
    {{- "# Valid channels: analysis, commentary, final. Channel must be included for every message." }}
{%- endmacro -%}

{{- "<|start|>system<|message|>" }}
{{- build_system_message() }}
{{- "<|end|>" }}

{%- if messages[0].role == "developer" or messages[0].role == "system" %}
    {%- set developer_message = messages[0].content %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set developer_message = "" %}
    {%- set loop_messages = messages %}
{%- endif %}

{%- if developer_message %}
    {{- "<|start|>developer<|message|>" }}
    {{- "# Instructions\\n\\n" }}
    {{- developer_message }}
    {{- "\\n\\n" }}
    {{- "<|end|>" }}
{%- endif %}

{%- for message in loop_messages -%}
    {%- if message.role == 'assistant' -%}
        {%- if "content" in message %}
            {%- if "<|channel|>analysis<|message|>" in message.content or "<|channel|>final<|message|>" in message.content %}
                {{- raise_exception("You have passed a message containing <|channel|> tags in the content field. Instead of doing this, you should pass analysis messages (the string between '<|message|>' and '<|end|>') in the 'thinking' field, and final messages (the string between '<|message|>' and '<|end|>') in the 'content' field.") }}
            {%- endif %}
        {%- endif %}
        {%- if "thinking" in message %}
            {%- if "<|channel|>analysis<|message|>" in message.thinking or "<|channel|>final<|message|>" in message.thinking %}
                {{- raise_exception("You have passed a message containing <|channel|> tags in the thinking field.") }}
            {%- endif %}
        {%- endif %}
        {%- if loop.last and not add_generation_prompt %}
            {#- The chain of thought is rendered only for a last assistant turn: training, never inference. #}
            {%- if "thinking" in message %}
                {{- "<|start|>assistant<|channel|>analysis<|message|>" + message.thinking + "<|end|>" }}
            {%- endif %}
            {#- <|return|> ends generation; <|end|> ends a message in the history. #}
            {{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|return|>" }}
        {%- else %}
            {{- "<|start|>assistant<|channel|>final<|message|>" + message.content + "<|end|>" }}
        {%- endif %}
    {%- elif message.role == 'user' -%}
        {{- "<|start|>user<|message|>" + message.content + "<|end|>" }}
    {%- endif -%}
{%- endfor -%}

{%- if add_generation_prompt -%}
<|start|>assistant
{%- endif -%}
"""

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# name -> template, special tokens (eos first), eos, pad, bos
TEMPLATES = {
    "qwen3": (QWEN3, ["<|im_end|>", "<|im_start|>", "<|endoftext|>", "<think>", "</think>"], "<|im_end|>",
              "<|endoftext|>", None),
    "deepseek_r1": (DEEPSEEK_R1, ["<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
                                  "<think>", "</think>", "<｜tool▁outputs▁end｜>"],
                    "<｜end▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜begin▁of▁sentence｜>"),
    "gpt_oss": (GPT_OSS, ["<|return|>", "<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|call|>",
                          "<|constrain|>", "<|endoftext|>"], "<|return|>", "<|endoftext|>", None),
    "chatml": (CHATML, ["<|im_end|>", "<|im_start|>", "<|endoftext|>"], "<|im_end|>", "<|endoftext|>", None),
}

_TEXTS = ["Write a Python function f(x) that adds 2 to x.", "Let me think. Step 1 adds 2: (x + 2).",
          "def f(x):\n    return (x + 2)", "Okay, so the answer is 42.", "Hmm, wait. The user asks for a function."]


def save_tokenizer_folder(folder: str | Path, name: str, *, template: str | None = "default",
                          vocab_size: int = 320):
    """A small byte-level BPE tokenizer (trained here on a few strings) with the family's special tokens and
    chat template, saved with `save_pretrained` into `folder`; `template=None` saves it without any."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    chat_template, specials, eos, pad, bos = TEMPLATES[name]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_TEXTS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=eos, pad_token=pad, bos_token=bos,
                                   additional_special_tokens=[s for s in specials if s not in (eos, pad, bos)])
    if template is not None:
        fast.chat_template = chat_template if template == "default" else template
    Path(folder).mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(folder))
    return fast
