import pytest
from transformers import AutoTokenizer

from tessy_dagster.toyworld.tokenizers import THINK_END, THINK_START, train_tokenizer

TEXTS = ["Write f(x) that adds 12. <think>\nHmm, wait. Step 1 adds 12: (x + 12).\n</think>\n\ndef f(x): return x"] * 50


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_chat_template_opens_thinking_and_renders_reasoning(tmp_path, role):
    train_tokenizer(TEXTS, role, 320, tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    prompt = tok.apply_chat_template([{"role": "user", "content": "q"}], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith(THINK_START + "\n")
    full = tok.apply_chat_template([{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": "a", "reasoning_content": "r"}], tokenize=False)
    assert f"{THINK_START}\nr\n{THINK_END}\n\na" in full
    assert tok.convert_tokens_to_ids(THINK_END) != tok.unk_token_id
    digits = tok.tokenize("12345")
    assert digits == ["1", "2", "3", "4", "5"]


def test_teacher_and_student_formats_differ(tmp_path):
    t = train_tokenizer(TEXTS, "teacher", 320, tmp_path / "t")
    s = train_tokenizer(TEXTS, "student", 330, tmp_path / "s")
    msgs = [{"role": "user", "content": "q"}]
    assert t.apply_chat_template(msgs, tokenize=False) != s.apply_chat_template(msgs, tokenize=False)
    assert t.eos_token != s.eos_token


def test_unknown_role_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown tokenizer role"):
        train_tokenizer(TEXTS, "critic", 300, tmp_path)
