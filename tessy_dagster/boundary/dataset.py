"""The boundary dataset (both models' thinking traces, windowed and annotated) and the predictors trained on it.

Artifact of boundary_dataset: `windows.parquet` (accepted windows with style spans), `rejected.parquet`
(windows the annotator's reply could not be aligned to, with the reason and the reply) and `checks.json`
(the Great Expectations verdict). boundary_model: `teacher/` (B_T), `student/` (B_S) and `eval.json`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Callable

import pyarrow as pa

from .. import schemas
from ..cooperate.generation import load_generator
from ..settings import BoundarySettings, SamplingSettings
from ..storage import read_table, write_table
from .annotate import REJECTION_REASONS, load_annotator
from .model import PREDICTORS, train_predictor
from .quality import DatasetBounds, check_boundary_dataset
from .windows import Window, cut_windows, splice_style, style_runs

CHECKS_FILE = "checks.json"
ANNOTATION_BATCH = 256  # windows per progress message


def sample_windows(*, model_dirs: dict, prompts: list[dict], settings: BoundarySettings,
                   progress: Callable[[str], None]) -> tuple[list[Window], dict]:
    """Thinking traces from each model (source name -> model folder), cut into seeded windows."""
    import torch

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    windows, metrics = [], {}
    for source, model_dir in model_dirs.items():
        gen = load_generator(model_dir, settings.trace_generation, role=source)
        progress(f"sampling {len(prompts)} thinking traces from the {source}")
        outs = gen.generate([gen.thinking_prompt(p["prompt"]) for p in prompts], settings.trace_max_tokens,
                            SamplingSettings(), stop_at_think_end=True)
        short = 0
        for p, out in zip(prompts, outs):
            cut = cut_windows(out.text, source_model=source, response_id=f"{source}:{p['problem_id']}",
                              window_words=settings.window_words, max_windows=settings.windows_per_response, rng=rng)
            short += not cut
            windows.extend(cut)
        metrics[f"responses_too_short_{source}"] = short
    return windows, metrics


def build_boundary_dataset(*, teacher_dir, student_dir, prompts_path, settings: BoundarySettings, out_dir,
                           progress: Callable[[str], None] = print) -> dict:
    prompts = read_table(prompts_path).to_pylist()[:settings.n_traces_per_model]
    if not prompts:
        raise ValueError(f"{prompts_path}: no prompts to sample traces from")
    windows, metrics = sample_windows(model_dirs={"teacher": teacher_dir, "student": student_dir}, prompts=prompts,
                                      settings=settings, progress=progress)
    annotator = load_annotator(settings)
    accepted, rejected = [], []
    for start in range(0, len(windows), ANNOTATION_BATCH):
        batch = windows[start:start + ANNOTATION_BATCH]
        for w, a in zip(batch, annotator.annotate([w.text for w in batch])):
            row = {"window_id": f"{w.response_id}:{w.start_word}", "source_model": w.source_model,
                   "response_id": w.response_id, "start_word": w.start_word, "text": w.text,
                   "annotator": annotator.name}
            if a.spans is None:
                rejected.append({**row, "reason": a.reason, "reply": a.reply})
            else:
                accepted.append({**row, "style_spans": [{"start": s, "end": e} for s, e in a.spans]})
        progress(f"windows {min(start + ANNOTATION_BATCH, len(windows))}/{len(windows)} annotated "
                 f"({annotator.name}): {len(rejected)} rejected so far")
    out_dir = Path(out_dir)
    write_table(pa.Table.from_pylist(accepted, schema=schemas.BOUNDARY_WINDOWS), out_dir / "windows.parquet",
                schemas.BOUNDARY_WINDOWS)
    write_table(pa.Table.from_pylist(rejected, schema=schemas.BOUNDARY_REJECTED), out_dir / "rejected.parquet",
                schemas.BOUNDARY_REJECTED)
    bounds = DatasetBounds(min_style_char_share=settings.min_style_char_share,
                           max_style_char_share=settings.max_style_char_share,
                           max_rejection_rate=settings.max_rejection_rate)
    verdict = check_boundary_dataset(accepted, rejected, bounds)
    (out_dir / CHECKS_FILE).write_text(json.dumps(verdict, indent=2))
    progress(f"dataset checks {'passed' if verdict['success'] else 'FAILED'}: "
             + ", ".join(f"{name} {'ok' if c['passed'] else 'failed'}" for name, c in verdict["checks"].items()))
    chars = sum(len(r["text"]) for r in accepted)
    style_chars = sum(s["end"] - s["start"] for r in accepted for s in r["style_spans"])
    reasons = Counter(r["reason"] for r in rejected)
    total = len(accepted) + len(rejected)
    return {
        "windows": len(accepted), "rejected": len(rejected), "rejection_rate": len(rejected) / total if total else 0.0,
        **{f"windows_{source}": sum(r["source_model"] == source for r in accepted) for source in PREDICTORS},
        **{f"rejected_{reason}": reasons[reason] for reason in REJECTION_REASONS},
        **metrics, "style_char_share": style_chars / chars if chars else 0.0,
        "checks_passed": int(verdict["success"]),
    }


def assert_dataset_passed_checks(dataset_dir) -> None:
    """Training's own guard: refuse a dataset whose checks failed or never ran."""
    path = Path(dataset_dir) / CHECKS_FILE
    if not path.exists():
        raise RuntimeError(f"{path} is missing: materialize boundary_dataset (which runs its checks) first")
    verdict = json.loads(path.read_text())
    if not verdict["success"]:
        failed = [name for name, c in verdict["checks"].items() if not c["passed"]]
        raise RuntimeError(f"{dataset_dir}: the boundary dataset failed its checks ({', '.join(failed)}); "
                           f"not training on it")


def train_from_windows(*, dataset_dir, toy_tokenizer_dir, settings: BoundarySettings, out_dir,
                       progress: Callable[[str], None] = print) -> dict:
    """Train B_T on the teacher's windows and B_S on the student's; evaluation of both goes to eval.json."""
    assert_dataset_passed_checks(dataset_dir)
    windows_path = Path(dataset_dir) / "windows.parquet"
    rows = read_table(windows_path).to_pylist()
    mixed = mixed_windows(rows, settings.mixed_window_share, settings.seed)
    report = {}
    for role, name in PREDICTORS.items():
        role_rows = [r for r in rows if r["source_model"] == role]
        if not role_rows:
            raise ValueError(f"{windows_path}: no {role} windows to train {name} on")
        progress(f"training {name} on {len(role_rows)} {role} windows and {len(mixed)} mixed-author windows")
        report[name] = train_predictor(role, role_rows, settings, toy_tokenizer_dir, Path(out_dir) / role, progress,
                                       mixed_rows=mixed)
    (Path(out_dir) / "eval.json").write_text(json.dumps(report, indent=2))
    return flat_metrics(report)


def mixed_windows(rows: list[dict], share: float, seed: int) -> list[dict]:
    """Windows of the text the cooperative engine shows the predictors: the student's style spans between the
    teacher's capability. Each is a teacher window whose runs of style text are replaced by runs drawn from the
    student's windows (the labels move with them). `share` of the teacher's windows are spliced (above
    1, some more than once); a window keeps its source's response id, so it sits on the same side of the
    split. Without them B_T only ever saw the teacher's own markers before a capability span, and in a
    cooperative trace every teacher chunk follows one of the student's."""
    teacher = [r for r in rows if r["source_model"] == "teacher" and r["style_spans"]]
    donors = [r["text"][s:e] for r in rows if r["source_model"] == "student"
              for s, e in style_runs(r["text"], [(sp["start"], sp["end"]) for sp in r["style_spans"]])]
    if share <= 0 or not teacher or not donors:
        return []
    rng = random.Random(f"mixed:{seed}")
    n = round(len(teacher) * share)
    picks = teacher * (n // len(teacher)) + rng.sample(teacher, n % len(teacher))
    out = []
    for i, r in enumerate(picks):
        text, spans = splice_style(r["text"], [(s["start"], s["end"]) for s in r["style_spans"]], donors, rng)
        out.append({**r, "window_id": f"mixed:{i}:{r['window_id']}", "source_model": "mixed", "text": text,
                    "style_spans": [{"start": s, "end": e} for s, e in spans]})
    return out


def flat_metrics(report: dict) -> dict:
    """eval.json flattened for asset metadata: `B_T.style_f1`, `B_S.switch_exact`, ..."""
    flat = {}
    for name, result in report.items():
        for key, value in {**result, **result["held_out"]}.items():
            if isinstance(value, (int, float)):
                flat[f"{name}.{key}"] = value
        for key, value in (result.get("held_out_mixed") or {}).items():
            if isinstance(value, (int, float)):
                flat[f"{name}.mixed.{key}"] = value
    return flat
