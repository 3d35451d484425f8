"""The student's SFT on TRL: tokens and loss mask, batching without cross-talk, epochs, the rule, the artifact."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tessy_dagster.chat_format import detect_thinking_format
from tessy_dagster.settings import ModelShape, SftSettings
from tessy_dagster.toyworld.models import causal_lm_config
from tessy_dagster.toyworld.tokenizers import train_tokenizer
from tessy_dagster.train.sft import encode_chat, encode_chats
from tessy_dagster.train.launch import launch_command
from tessy_dagster.train.student import (
    choose_epoch, finetune_student, runtime_choices, sft_config, sft_dataset, split_records,
)

RECORDS = [(f"Write f(x) that adds {k} then multiplies by {m}.",
            f"<think>\nNow then, Step 1 adds {k}: (x + {k}). Then times {m}.\n</think>\n\n"
            f"def f(x):\n    return (x + {k}) * {m}") for k in range(1, 9) for m in range(2, 5)]
QUIET = lambda message: None  # noqa: E731
FAST = dict(batch_size=8, learning_rate=1e-2, log_every=1000)


def write_corpus(path, records):
    rows = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": a}]} for p, a in records]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny Qwen3-architecture student (its own tokenizer and chat template) and a 24-record corpus."""
    root = tmp_path_factory.mktemp("sft_world")
    tokenizer = train_tokenizer([p + "\n" + a for p, a in RECORDS], "student", 330, root / "student")
    torch.manual_seed(0)
    shape = ModelShape(architecture="qwen3", hidden_size=32, num_layers=1, num_heads=2)
    model = AutoModelForCausalLM.from_config(causal_lm_config(shape, tokenizer))
    model.save_pretrained(root / "student")
    tokenizer.save_pretrained(root / "student")
    return {"student": root / "student", "corpus": write_corpus(root / "corpus.parquet", RECORDS),
            "tokenizer": tokenizer}


def _trainer(world, tmp_path, batching="padded", **overrides):
    from trl import SFTTrainer

    settings = SftSettings(**{**FAST, "batching": batching, **overrides})
    choices = {**runtime_choices(settings), "batching": batching}
    examples = encode_chats(world["tokenizer"], RECORDS, settings.max_tokens)
    model = AutoModelForCausalLM.from_pretrained(str(world["student"]), attn_implementation="sdpa")
    args = sft_config(settings, output_dir=tmp_path / "trainer", has_validation=False, choices=choices)
    return SFTTrainer(model=model, args=args, train_dataset=sft_dataset(examples),
                      processing_class=world["tokenizer"]), examples


def test_tokens_are_encode_chats_and_the_loss_covers_exactly_the_assistant_turn(world, tmp_path):
    trainer, examples = _trainer(world, tmp_path)
    fmt = detect_thinking_format(world["tokenizer"])
    tokenizer = world["tokenizer"]
    for (prompt, assistant), prepared in zip(RECORDS, trainer.train_dataset):
        expected = encode_chat(tokenizer, prompt, assistant, fmt)
        assert prepared["input_ids"] == expected.input_ids
        trained = [label != -100 for label in prepared["labels"]]
        assert trained == [bool(m) for m in expected.loss_mask]
        start = trained.index(True)
        assert tokenizer.decode(prepared["input_ids"][:start]) == fmt.thinking_prompt(tokenizer, prompt)
        assert tokenizer.decode([t for t in prepared["labels"] if t != -100]) == \
            fmt.continuation(assistant) + (fmt.turn_end or tokenizer.eos_token)
    # the collated batch keeps that mask (padding is never trained)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert ((batch["labels"] != -100) <= (batch["attention_mask"] == 1)).all()
    assert int((batch["labels"] != -100).sum()) == sum(sum(ex.loss_mask) for ex in examples[:4])


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_batches_keep_records_apart(world, attn):
    """TRL's padding-free collator flattens a batch into one row with per-record position ids; transformers
    turns the position-id resets into a block-diagonal mask for sdpa/eager (flash attention uses them as varlen
    boundaries). Each record's logits must equal its logits alone; a flattened row without the resets (records
    attending to each other) must not."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    model = AutoModelForCausalLM.from_pretrained(str(world["student"]), attn_implementation=attn).eval()
    examples = encode_chats(world["tokenizer"], RECORDS[:3], 384)
    collate = DataCollatorForLanguageModeling(pad_token_id=world["tokenizer"].pad_token_id, padding_free=True)
    batch = collate([{"input_ids": ex.input_ids} for ex in examples])
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    # use_cache=False as in training (SFTTrainer.compute_loss sets it): with a cache, transformers skips the
    # packed-sequence detection and the records would attend to each other
    with torch.no_grad():
        flat = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        alone = [model(input_ids=torch.tensor([ex.input_ids]), use_cache=False).logits[0] for ex in examples]
        crossed = model(input_ids=batch["input_ids"], use_cache=False,
                        position_ids=torch.arange(batch["input_ids"].shape[1])[None]).logits[0]
    bounds = batch["cu_seq_lens_q"].tolist()
    for i, logits in enumerate(alone):
        torch.testing.assert_close(flat[bounds[i]:bounds[i + 1]], logits, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(crossed[bounds[1]:bounds[2]], alone[1], atol=1e-3)


def test_padded_and_padding_free_first_step_losses_agree(world, tmp_path):
    """The same first batch gives the same loss padded and padding-free (no cross-talk, same token count)."""
    losses = {}
    for batching in ("padded", "padding_free"):
        trainer, _ = _trainer(world, tmp_path / batching, batching, max_tokens=384)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(8)])
        trainer.model.eval()
        with torch.no_grad():
            losses[batching] = float(trainer.compute_loss(trainer.model, batch))
    assert losses["padded"] == pytest.approx(losses["padding_free"], rel=1e-4)


def test_sft_keeps_every_epoch_and_reports_the_last(world, tmp_path):
    out = tmp_path / "ckpt"
    metrics = finetune_student(student_dir=world["student"], corpus_path=world["corpus"], arm="tessy",
                               settings=SftSettings(epochs=3, **FAST), out_dir=out, progress=QUIET)
    assert all(isinstance(v, (int, float)) for v in metrics.values())
    assert metrics["records"] == 24 and metrics["train_steps"] == 9 and metrics["chosen_epoch"] == 3
    assert metrics["final_loss"] < metrics["first_loss"] and metrics["train_tokens"] > 0
    summary = json.loads((out / "training.json").read_text())
    assert [e["name"] for e in summary["epochs"]] == ["epoch-1", "epoch-2", "epoch-3"]
    assert summary["rule"] == "last" and summary["chosen"] == "epoch-3"
    assert all(e["train_loss"] > 0 and e["validation_loss"] is None for e in summary["epochs"])
    for name in ("epoch-1", "epoch-2", "epoch-3"):
        assert (out / "epochs" / name / "model.safetensors").exists()
        assert (out / "epochs" / name / "tokenizer.json").exists()
    assert (out / "model.safetensors").read_bytes() == (out / "epochs" / "epoch-3" / "model.safetensors").read_bytes()
    assert (out / "epochs" / "epoch-1" / "model.safetensors").read_bytes() != (out / "model.safetensors").read_bytes()
    # weights only: no optimizer, scheduler, RNG or Trainer state, no leftover trainer folder
    left = {p.name for p in out.rglob("*")}
    assert not left & {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin",
                       ".trainer"}
    # the reported checkpoint loads with from_pretrained and generates
    model = AutoModelForCausalLM.from_pretrained(str(out))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    prompt = detect_thinking_format(tokenizer).thinking_prompt(tokenizer, RECORDS[0][0])
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    generated = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape[1] > ids.shape[1]


def test_lowest_validation_loss_rule_reports_that_epoch(world, tmp_path):
    out = tmp_path / "ckpt"
    settings = SftSettings(epochs=3, validation_share=0.25, report_epoch="lowest_validation_loss",
                           save_every_epoch=True, **{**FAST, "learning_rate": 5e-2})
    metrics = finetune_student(student_dir=world["student"], corpus_path=world["corpus"], settings=settings,
                               out_dir=out, progress=QUIET)
    summary = json.loads((out / "training.json").read_text())
    assert metrics["validation_records"] == 6 and metrics["train_records"] == 18
    best = min(summary["epochs"], key=lambda e: e["validation_loss"])
    assert summary["chosen"] == best["name"] and metrics["chosen_epoch"] == best["epoch"]
    assert metrics["validation_loss"] == best["validation_loss"]
    assert (out / "model.safetensors").read_bytes() == \
        (out / "epochs" / best["name"] / "model.safetensors").read_bytes()


def test_choose_epoch_rule():
    epochs = [{"epoch": 1, "validation_loss": 2.0}, {"epoch": 2, "validation_loss": 1.5},
              {"epoch": 3, "validation_loss": 1.7}]
    assert choose_epoch(epochs, "last")["epoch"] == 3
    assert choose_epoch(epochs, "lowest_validation_loss")["epoch"] == 2
    assert choose_epoch(epochs + [{"epoch": 4, "validation_loss": 1.5}], "lowest_validation_loss")["epoch"] == 2
    with pytest.raises(ValueError, match="no epoch has a validation loss"):
        choose_epoch([{"epoch": 1, "validation_loss": None}], "lowest_validation_loss")
    train, val = split_records(24, 0.25, 0)
    assert len(val) == 6 and sorted(train + val) == list(range(24)) and split_records(24, 0.25, 0) == (train, val)


def test_wall_clock_cap_stops_and_reports_the_partial_epoch(world, tmp_path):
    out = tmp_path / "ckpt"
    metrics = finetune_student(student_dir=world["student"], corpus_path=world["corpus"], out_dir=out,
                               settings=SftSettings(epochs=3, max_seconds=1e-3, save_every_epoch=False, **FAST),
                               progress=QUIET)
    summary = json.loads((out / "training.json").read_text())
    assert metrics["train_steps"] == 1 and summary["capped_by_max_seconds"]
    assert summary["chosen"] == "epoch-1-partial" and summary["epochs"][0]["partial"]
    assert (out / "model.safetensors").exists() and not (out / "epochs").exists()


@pytest.mark.parametrize("batching", ["padding_free", "packed"])
def test_padding_free_and_packed_training_runs_with_gradient_checkpointing(world, tmp_path, batching):
    out = tmp_path / "ckpt"
    metrics = finetune_student(student_dir=world["student"], corpus_path=world["corpus"], out_dir=out,
                               settings=SftSettings(epochs=2, batching=batching, max_tokens=256,
                                                    gradient_checkpointing=True, **FAST),
                               progress=QUIET)
    summary = json.loads((out / "training.json").read_text())
    assert summary["batching"] == batching and summary["attn_implementation"] == "sdpa" and not summary["bf16"]
    assert metrics["final_loss"] < metrics["first_loss"]


def test_bad_corpus_names_the_file(world, tmp_path):
    empty = write_corpus(tmp_path / "empty.parquet", [])
    with pytest.raises(ValueError, match=f"{empty}: the corpus is empty"):
        finetune_student(student_dir=world["student"], corpus_path=empty, settings=SftSettings(),
                         out_dir=tmp_path / "a", progress=QUIET)
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match=str(corrupt)):
        finetune_student(student_dir=world["student"], corpus_path=corrupt, settings=SftSettings(),
                         out_dir=tmp_path / "b", progress=QUIET)
    with pytest.raises(FileNotFoundError, match="missing.parquet"):
        finetune_student(student_dir=world["student"], corpus_path=tmp_path / "missing.parquet",
                         settings=SftSettings(), out_dir=tmp_path / "c", progress=QUIET)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_settings_validate_the_batch_and_the_rule():
    assert SftSettings(batch_size=128, per_device_batch_size=4, num_processes=8).gradient_accumulation_steps == 4
    with pytest.raises(ValueError, match="batch_size 30 must be a multiple"):
        SftSettings(batch_size=30, num_processes=4)
    with pytest.raises(ValueError, match="needs validation_share"):
        SftSettings(report_epoch="lowest_validation_loss")


def test_fsdp_is_refused_on_cpu_and_torchrun_is_the_cpu_launcher(tmp_path):
    with pytest.raises(ValueError, match="FSDP, which needs CUDA"):
        launch_command(SftSettings(num_processes=2), tmp_path / "p.json")
    command = launch_command(SftSettings(num_processes=2, launcher="torchrun"), tmp_path / "p.json")
    assert command[1:4] == ["-m", "torch.distributed.run", "--standalone"] and "--nproc_per_node=2" in command
    assert command[-4:] == ["-m", "tessy_dagster.train.launch", "--params", f"@{tmp_path / 'p.json'}"]


def test_two_cpu_processes_train_through_torchrun(world, tmp_path):
    """DDP over gloo, two ranks on this CPU: rank 0 writes the artifact, its progress reaches the caller."""
    out, lines = tmp_path / "ckpt", []
    metrics = finetune_student(student_dir=world["student"], corpus_path=world["corpus"], out_dir=out,
                               arm="tessy", progress=lines.append,
                               settings=SftSettings(epochs=2, num_processes=2, launcher="torchrun",
                                                    validation_share=0.25, **FAST))
    summary = json.loads((out / "training.json").read_text())
    assert metrics["processes"] == 2 and summary["distributed_type"] == "MULTI_CPU"
    assert metrics["train_steps"] == 6  # 18 records, 4 per rank x 2 ranks = batch 8: 3 steps an epoch
    assert [e["name"] for e in summary["epochs"]] == ["epoch-1", "epoch-2"]
    assert all(e["validation_loss"] is not None for e in summary["epochs"])
    assert any("arm tessy" in line and "2 processes" in line for line in lines)
    assert not list(out.glob(".launch*")) and not (out / ".trainer").exists()
    assert AutoModelForCausalLM.from_pretrained(str(out)) is not None


def test_two_nodes_meet_at_node_0_and_only_node_0_writes_the_artifact(world, tmp_path):
    """A multi-node SFT as the kubernetes launcher's Indexed Job runs it, with both "pods" on this machine:
    each runs the student_checkpoint step with its node rank; torchrun's static rendezvous is at node 0."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = SftSettings(epochs=1, num_nodes=2, num_processes=1, launcher="torchrun", **FAST)
    params = {"out_dir": str(tmp_path / "ckpt"), "code_version": "test", "arm": "tessy",
              "settings": settings.model_dump(),
              "inputs": {"student_model": {"dir": str(world["student"]), "digest": "s"},
                         "sft_corpus": {"dir": str(world["corpus"].parent), "digest": "c"}}}
    (tmp_path / "params.json").write_text(json.dumps(params))
    nodes = []
    for rank in (0, 1):
        env = {**os.environ, "TESSY_NODE_RANK": str(rank), "TESSY_NUM_NODES": "2",
               "TESSY_MASTER_ADDR": "127.0.0.1", "TESSY_MASTER_PORT": str(port)}
        env = {k: v for k, v in env.items() if not k.startswith("DAGSTER_PIPES")}
        nodes.append(subprocess.Popen([sys.executable, "-m", "tessy_dagster.steps.student_checkpoint", "--params",
                                       f"@{tmp_path / 'params.json'}"], env=env, cwd=tmp_path,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = [node.communicate(timeout=600)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n\n".join(o[-3000:] for o in outputs)
    summary = json.loads((tmp_path / "ckpt" / "training.json").read_text())
    assert summary["processes"] == 2  # one rank on each node, one world
    assert json.loads((tmp_path / "ckpt" / "manifest.json").read_text())["digest"]
    assert '"digest"' in outputs[0].splitlines()[-1] and '"digest"' not in outputs[1]  # node 0 reports, node 1 not
