"""Model folders read where they are: the toy world's micro models described (parameters from the safetensors
headers against the loaded model's count), and each way a folder can be unusable, named."""

import json
import shutil

import pytest
from transformers import AutoModelForCausalLM

from chat_templates import CHATML, save_tokenizer_folder
from tessy_dagster.inputs.models import inspect_model_folder, safetensors_header, write_model_record
from tessy_dagster.storage import digest_dir


@pytest.fixture
def copy(micro_world, tmp_path):
    """A copy of a micro model folder, to break."""
    def make(role="student"):
        target = tmp_path / role
        shutil.copytree(micro_world[role], target)
        return target
    return make


@pytest.mark.parametrize("role, architecture", [("teacher", "LlamaForCausalLM"), ("student", "Qwen3ForCausalLM")])
def test_the_toy_models_are_described(micro_world, role, architecture):
    folder = micro_world[role]
    record = inspect_model_folder(folder, needs_weights=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert record["architecture"] == architecture and record["digest"] == digest_dir(folder)
    assert record["context_length"] == model.config.max_position_embeddings == 1024
    assert record["vocab_size"] == model.config.vocab_size and record["dtype"] == "float32"
    assert (record["thinking_format"], record["think_start"], record["think_end"]) == ("think", "<think>", "</think>")
    assert record["has_weights"] and record["weight_files"] == 1


def test_sharded_weights_are_counted_from_every_shard(micro_world, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(str(micro_world["teacher"]))
    folder = tmp_path / "sharded"
    shutil.copytree(micro_world["teacher"], folder)
    (folder / "model.safetensors").unlink()
    model.save_pretrained(str(folder), max_shard_size="20KB")
    shards = sorted(folder.glob("model-*.safetensors"))
    assert len(shards) > 1 and (folder / "model.safetensors.index.json").exists()
    assert "__metadata__" in safetensors_header(shards[0])
    record = inspect_model_folder(folder, needs_weights=True)
    assert record["parameters"] == sum(p.numel() for p in model.parameters())
    assert record["weight_files"] == len(shards)
    shards[-1].unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder}: model.safetensors.index.json names shards that are not "
                                                f"there \\({shards[-1].name}\\)"):
        inspect_model_folder(folder, needs_weights=True)


def test_a_missing_folder_config_or_weights_is_named(copy, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nowhere'}: the model folder does not exist"):
        inspect_model_folder(tmp_path / "nowhere", needs_weights=True)
    folder = copy()
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder}: no weights .*copy the model's weight files here"):
        inspect_model_folder(folder, needs_weights=True)
    served = inspect_model_folder(folder, needs_weights=False)  # a served model: its tokenizer is enough
    assert served["parameters"] is None and served["architecture"] == "Qwen3ForCausalLM"
    assert served["has_weights"] is False and served["thinking_format"] == "think"
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder}: config.json is missing"):
        inspect_model_folder(folder, needs_weights=True)
    bare = inspect_model_folder(folder, needs_weights=False)
    assert bare["architecture"] is None and bare["parameters"] is None and bare["dtype"] is None
    assert bare["context_length"] is None  # the toy tokenizer's model_max_length is transformers' "unknown"
    assert bare["vocab_size"] == bare["tokenizer_size"] > 0


def test_a_missing_tokenizer_or_template_or_thinking_is_named(copy):
    folder = copy()
    (folder / "chat_template.jinja").write_text(CHATML)
    with pytest.raises(ValueError, match=f"{folder}: the chat template has no thinking section"):
        inspect_model_folder(folder, needs_weights=True)
    # a model that only answers (an annotator) may have no thinking section
    assert inspect_model_folder(folder, needs_weights=True, needs_thinking=False)["thinking_format"] is None
    (folder / "chat_template.jinja").unlink()
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert "chat_template" not in config
    with pytest.raises(ValueError, match=f"{folder}: the tokenizer has no chat template .*chat_template.jinja"):
        inspect_model_folder(folder, needs_weights=True)
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "chat_template": CHATML}))
    with pytest.raises(ValueError, match="no thinking section"):  # a template kept in tokenizer_config.json
        inspect_model_folder(folder, needs_weights=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    with pytest.raises(FileNotFoundError, match=f"{folder}: no tokenizer"):
        inspect_model_folder(folder, needs_weights=True)


def test_a_served_harmony_tokenizer_folder(tmp_path):
    folder = tmp_path / "gpt_oss"
    save_tokenizer_folder(folder, "gpt_oss")
    record = inspect_model_folder(folder, needs_weights=False)
    assert (record["thinking_format"], record["think_start"], record["think_end"]) == (
        "harmony", "<|channel|>analysis<|message|>", "<|end|>")
    assert record["architecture"] is None and record["parameters"] is None
    metrics = write_model_record(record, tmp_path)
    assert json.loads((tmp_path / "model.json").read_text()) == record
    assert metrics == {"vocab_size": record["vocab_size"], "tokenizer_size": record["tokenizer_size"],
                       "weight_files": 0, "weight_bytes": 0}
