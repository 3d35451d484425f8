import pytest
from transformers import AutoModelForCausalLM

from tessy_dagster.settings import ModelShape
from tessy_dagster.toyworld.models import causal_lm_config
from tessy_dagster.toyworld.tokenizers import train_tokenizer
from tessy_dagster.train.sft import encode_chat, encode_chats, train_causal_lm

ANSWER = "<think>\nNow then, Step 1 adds 2: (x + 2).\n</think>\n\ndef f(x):\n    return (x + 2)"


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return train_tokenizer([f"Write f(x) that adds 2. {ANSWER}"] * 40, "student", 330,
                           tmp_path_factory.mktemp("tok"))


def test_loss_mask_covers_exactly_the_assistant_turn(tokenizer):
    ex = encode_chat(tokenizer, "Write f(x) that adds 2.", ANSWER)
    prompt_len = ex.loss_mask.index(1)
    assert tokenizer.decode(ex.input_ids[:prompt_len]).endswith("<think>\n")
    assert all(ex.loss_mask[prompt_len:])
    assert tokenizer.decode(ex.input_ids[prompt_len:]).endswith("return (x + 2)" + tokenizer.eos_token)


def test_assistant_turn_must_open_thinking(tokenizer):
    with pytest.raises(ValueError, match="must start with"):
        encode_chat(tokenizer, "q", "no thinking here")


def test_training_lowers_the_loss(tokenizer):
    shape = ModelShape(architecture="qwen3", hidden_size=32, num_layers=1, num_heads=2)
    model = AutoModelForCausalLM.from_config(causal_lm_config(shape, tokenizer))
    examples = encode_chats(tokenizer, [("Write f(x) that adds 2.", ANSWER)] * 16, 128)
    report = train_causal_lm(model, examples, pad_id=tokenizer.pad_token_id, epochs=40, max_seconds=60,
                             batch_size=8, learning_rate=1e-2, seed=0, progress=lambda m: None)
    assert report.steps == 80
    assert report.final_loss < report.first_loss / 2


def test_no_examples_is_an_error():
    with pytest.raises(ValueError, match="no training examples"):
        train_causal_lm(None, [], pad_id=0, epochs=1, max_seconds=1, batch_size=1, learning_rate=1e-3, seed=0)
