"""The boundary dataset (traces from both models, windowed and annotated) and training on it."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..cooperate.generation import HFGenerator
from ..settings import BoundarySettings, SamplingSettings
from ..storage import read_table, write_table
from ..toyworld.tasks import STYLE_LEXICON
from .model import label_windows, train_boundary_model
from .windows import cut_windows, lexicon_spans

ANNOTATOR = "lexicon"
MAX_THINKING_TOKENS = 256


def build_boundary_dataset(*, teacher_dir, student_dir, prompts_path, settings: BoundarySettings, out_dir,
                           progress: Callable[[str], None] = print) -> dict:
    import torch

    prompts = read_table(prompts_path).to_pylist()[:settings.n_traces_per_model]
    if not prompts:
        raise ValueError(f"{prompts_path}: no prompts to sample traces from")
    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    rows, metrics = [], {}
    for source, model_dir in (("teacher", teacher_dir), ("student", student_dir)):
        gen = HFGenerator(model_dir)
        progress(f"sampling {len(prompts)} thinking traces from the {source}")
        outs = gen.generate([gen.chat_prompt(p["prompt"]) for p in prompts], MAX_THINKING_TOKENS,
                            SamplingSettings(), stop_at_think_end=True)
        n_windows = 0
        for p, out in zip(prompts, outs):
            for w in cut_windows(out.text, source_model=source, response_id=f"{source}:{p['problem_id']}",
                                 window_words=settings.window_words, max_windows=settings.windows_per_response,
                                 rng=rng):
                spans = lexicon_spans(w.text, STYLE_LEXICON)
                rows.append({"window_id": f"{w.response_id}:{w.start_word}", "source_model": source,
                             "response_id": w.response_id, "start_word": w.start_word, "text": w.text,
                             "annotator": ANNOTATOR, "style_spans": [{"start": s, "end": e} for s, e in spans]})
                n_windows += 1
        metrics[f"windows_{source}"] = n_windows
    table = pa.Table.from_pylist(rows, schema=schemas.BOUNDARY_WINDOWS)
    write_table(table, Path(out_dir) / "windows.parquet", schemas.BOUNDARY_WINDOWS)
    chars = sum(len(r["text"]) for r in rows)
    style_chars = sum(s["end"] - s["start"] for r in rows for s in r["style_spans"])
    return {"windows": len(rows), **metrics, "style_char_share": style_chars / chars if chars else 0.0}


def train_from_windows(*, windows_path, tokenizer_dir, settings: BoundarySettings, out_dir,
                       progress: Callable[[str], None] = print) -> dict:
    """Label the windows with the classifier's tokenizer (here the student's) and train the classifier."""
    from transformers import AutoTokenizer

    rows = read_table(windows_path).to_pylist()
    if len(rows) < 2:
        raise ValueError(f"{windows_path}: {len(rows)} windows; the boundary model needs at least 2 "
                         f"(raise boundary.n_traces_per_model or lower boundary.window_words)")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    windows = label_windows(tokenizer, [r["text"] for r in rows],
                            [[(s["start"], s["end"]) for s in r["style_spans"]] for r in rows])
    metrics = train_boundary_model(tokenizer, windows, settings, out_dir, progress)
    (Path(out_dir) / "eval.json").write_text(json.dumps(metrics, indent=2))
    return metrics
