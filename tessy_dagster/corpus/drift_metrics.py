"""Model-based style-drift metrics per trace: no lexicon, any pair of models.

For every trace of a corpus (TRACES rows: prompt, thinking, answer, spans with their authors):
- token kinds from the boundary model: each span's author's predictor (B_T for the teacher's text, B_S
  for the student's) reads the thinking, and every character gets the kind (style / capability) predicted
  for the classifier token that holds it. The head at token j predicts token j+1, so the first token of
  the thinking has no prediction: it takes the kind of the second (the prediction at position 0), which
  keeps an opening discourse marker ("Okay, so") style. Whitespace between tokens goes with the next word,
  as in the engine's handoffs. Long thinking is read in windows of the classifier's `max_tokens`, each
  after the last `context_tokens` tokens before it (the context the predictors were trained to use).
- the student's own per-token negative log-likelihood (nats) of the trace in its own prompt
  (`thinking_prompt(prompt) + thinking + answer_opener + answer`): every student token of the thinking gets
  its first visible character's author and kind, and the NLL is averaged over all thinking tokens, per
  author, per kind, per author x kind, and over the answer. This is TESSY's decomposition of the SFT loss
  into its capability and style terms, measured.
- the similarity of the trace (thinking + answer) to the student's own response to the same prompt:
  TF-IDF bags of the student tokenizer's tokens, IDF fitted on the student's own responses (the same for
  every arm), cosine (the paper's per-query similarity).
- the style-token rate per author (share of the author's student tokens labelled style) and the teacher
  token share (teacher-written tokens over all, in the student's tokenizer, as the engine counted them).

`compute_drift_metrics` returns one dict per trace; `calibrate` summarises the same metrics on the student's
own traces (a second sample, measured against the first): the reference the drift gate's thresholds are
relative to. torch, transformers and scikit-learn are imported inside the functions.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

AUTHORS = ("student", "teacher")
KINDS = ("style", "capability")
STYLE, CAPABILITY = 1, 0
# Per-trace NLL groups: (column suffix, author or None for any, kind or None for any)
NLL_GROUPS = (
    ("thinking", None, None),
    ("student_spans", "student", None), ("teacher_spans", "teacher", None),
    ("style", None, STYLE), ("capability", None, CAPABILITY),
    ("student_style", "student", STYLE), ("student_capability", "student", CAPABILITY),
    ("teacher_style", "teacher", STYLE), ("teacher_capability", "teacher", CAPABILITY),
)
# The columns every row of `compute_drift_metrics` has (values may be None where a group is empty).
METRIC_COLUMNS = tuple(
    [c for name, _, _ in NLL_GROUPS for c in (f"nll_{name}", f"n_{name}_tokens")]
    + ["nll_answer", "n_answer_tokens", "similarity", "style_rate", "style_rate_student", "style_rate_teacher",
       "teacher_token_share"]
)
CALIBRATION_VERSION = 1


# --- characters: author and kind ------------------------------------------------------------------------

def char_authors(thinking: str, spans: Sequence[dict]) -> list[str]:
    """The author of every character of `thinking`, from the trace's spans (char offsets, end exclusive).
    A character in no span (whitespace the engine trimmed) takes the next span's author, or the last one's."""
    out: list[str | None] = [None] * len(thinking)
    for span in spans:
        for i in range(max(0, int(span["start"])), min(len(thinking), int(span["end"]))):
            out[i] = span["author"]
    nxt = spans[-1]["author"] if spans else "student"
    for i in range(len(out) - 1, -1, -1):
        if out[i] is None:
            out[i] = nxt
        else:
            nxt = out[i]
    return out  # type: ignore[return-value]


def _fill_from_next(kinds: list[int], default: int) -> list[int]:
    """Characters no token starts on (whitespace between tokens) take the next labelled character's kind."""
    nxt = default
    for i in range(len(kinds) - 1, -1, -1):
        if kinds[i] < 0:
            kinds[i] = nxt
        else:
            nxt = kinds[i]
    return kinds


def _windows(n: int, max_tokens: int, context_tokens: int) -> list[tuple[int, int, int]]:
    """(input start, first predicted position, end) of each window over n tokens: every position is
    predicted once, each window after up to `context_tokens` tokens of context."""
    context = max(0, min(context_tokens, max_tokens - 1))
    out, first = [], 0
    while first < n:
        start = max(0, first - context)
        end = min(n, start + max_tokens)
        out.append((start, first, end))
        first = end
    return out or [(0, 0, 0)]


def classify_chars(tokenizer, model, texts: Sequence[str], *, max_tokens: int = 512, context_tokens: int = 200,
                   batch_size: int = 32) -> list[list[int]]:
    """One predictor over whole texts: the kind (1 style, 0 capability) of every character of each text."""
    import torch

    from ..boundary.model import _padded

    enc = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    jobs = []  # (text index, ids of the window, index of its first predicted position, its absolute start)
    for t, ids in enumerate(enc["input_ids"]):
        for start, first, end in _windows(len(ids), max_tokens, context_tokens):
            jobs.append((t, ids[start:end], first - start, start))
    token_pred: list[list[int]] = [[-1] * len(ids) for ids in enc["input_ids"]]
    order = sorted(range(len(jobs)), key=lambda j: len(jobs[j][1]))
    with torch.no_grad():
        for b in range(0, len(order), batch_size):
            batch = [jobs[j] for j in order[b:b + batch_size]]
            ids, attention, _ = _padded([job[1] for job in batch], tokenizer.pad_token_id)
            pred = model(input_ids=ids, attention_mask=attention).logits.argmax(-1).tolist()
            for (t, window, first, start), row in zip(batch, pred):
                # the head at position p predicts token p+1
                for p in range(max(0, first - 1), len(window) - 1):
                    token_pred[t][start + p + 1] = row[p]
                if start == 0 and len(window) > 1:
                    token_pred[t][0] = row[0]  # the first token: the second's kind
                elif start == 0 and window:
                    token_pred[t][0] = CAPABILITY
    out = []
    for text, offsets, preds in zip(texts, enc["offset_mapping"], token_pred):
        kinds = [-1] * len(text)
        for (s, e), k in zip(offsets, preds):
            for i in range(max(0, s), min(len(text), e)):
                if kinds[i] < 0 and not text[i].isspace():
                    kinds[i] = k
        out.append(_fill_from_next(kinds, CAPABILITY))
    return out


def char_kinds(boundary, rows: Sequence[dict], *, max_tokens: int = 512, batch_size: int = 32,
               progress: Callable[[str], None] | None = None) -> list[list[int]]:
    """The kind of every character of each row's thinking, by the predictor of the character's author.
    `boundary` is a `BoundaryPredictor` (both predictors loaded, its `context_tokens`). Each predictor
    reads only the traces its author wrote in; it reads the whole thinking, so at a handoff it has the other
    author's text as context, as in the engine."""
    authors = [char_authors(r["thinking"], r["spans"] or []) for r in rows]
    kinds = [[CAPABILITY] * len(r["thinking"]) for r in rows]
    for role in AUTHORS:
        index = [i for i, a in enumerate(authors) if role in a]
        if not index:
            continue
        tokenizer, model = boundary.predictors[role]
        labelled = classify_chars(tokenizer, model, [rows[i]["thinking"] for i in index], max_tokens=max_tokens,
                                  context_tokens=boundary.context_tokens, batch_size=batch_size)
        for i, k in zip(index, labelled):
            kinds[i] = [kc if a == role else old for kc, a, old in zip(k, authors[i], kinds[i])]
        if progress:
            progress(f"boundary labels: {len(index)} traces read by the {role}'s predictor")
    return kinds


# --- the student's NLL -----------------------------------------------------------------------------------

def _first_visible(text: str, start: int, end: int) -> int | None:
    for i in range(max(0, start), min(len(text), end)):
        if not text[i].isspace():
            return i
    return max(0, start) if start < len(text) and end > start else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def student_nll(student_dir, rows: Sequence[dict], kinds: Sequence[list[int]], *, batch_size: int = 16,
                progress: Callable[[str], None] | None = None, progress_every: int = 10,
                model=None, local=None) -> list[dict]:
    """Per row: the student's mean NLL (nats per student token) of its thinking, per author / kind / both,
    and of its answer, with the token count of every group (mean None where a group has no tokens).

    The text is the student's own `thinking_prompt(prompt) + thinking + answer_opener + answer`, tokenized
    as one string (as SFT sees it); a token belongs to the thinking (or the answer) when its first character
    does, and takes that character's author and kind."""
    import torch

    from ..boundary.model import _padded
    from ..cooperate.generation import LocalTokenizer

    local = local or LocalTokenizer(student_dir)
    tokenizer, fmt = local.tokenizer, local.format
    if model is None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32).eval()
    limit = getattr(model.config, "max_position_embeddings", None) or 10 ** 9
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    prompts = [local.thinking_prompt(r["prompt"]) for r in rows]
    texts = [p + r["thinking"] + fmt.answer_opener + (r["answer"] or "") for p, r in zip(prompts, rows)]
    enc = tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True)
    ids_all = [ids[:limit] for ids in enc["input_ids"]]
    nll_all: list[list[float]] = [[] for _ in rows]
    order = sorted(range(len(rows)), key=lambda i: len(ids_all[i]))
    n_batches = math.ceil(len(order) / batch_size)
    with torch.no_grad():
        for b in range(n_batches):
            part = order[b * batch_size:(b + 1) * batch_size]
            ids, attention, _ = _padded([ids_all[i] for i in part], pad)
            logits = model(input_ids=ids, attention_mask=attention).logits.float()
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none")
            for j, i in enumerate(part):
                nll_all[i] = [0.0] + nll[j, :len(ids_all[i]) - 1].tolist()  # token 0 has no prediction
            if progress and ((b + 1) % progress_every == 0 or b + 1 == n_batches):
                progress(f"student NLL: batch {b + 1}/{n_batches}")
    out = []
    for row, prompt, offsets, token_nll, kind in zip(rows, prompts, enc["offset_mapping"], nll_all, kinds):
        thinking, p0 = row["thinking"], len(prompt)
        a0 = p0 + len(thinking) + len(fmt.answer_opener)
        authors = char_authors(thinking, row["spans"] or [])
        groups = {name: [] for name, _, _ in NLL_GROUPS}
        answer = []
        for t, (s, e) in enumerate(offsets[:len(token_nll)]):
            if t == 0:
                continue
            if p0 <= s < p0 + len(thinking):
                c = _first_visible(thinking, s - p0, e - p0)
                if c is None:
                    continue
                for name, who, what in NLL_GROUPS:
                    if (who is None or authors[c] == who) and (what is None or kind[c] == what):
                        groups[name].append(token_nll[t])
            elif s >= a0:
                answer.append(token_nll[t])
        metrics = {}
        for name, values in groups.items():
            metrics[f"nll_{name}"] = _mean(values)
            metrics[f"n_{name}_tokens"] = len(values)
        metrics["nll_answer"], metrics["n_answer_tokens"] = _mean(answer), len(answer)
        out.append(metrics)
    return out


# --- similarity to the student's own responses -----------------------------------------------------------

def response_text(row: dict) -> str:
    return f"{row['thinking']}\n{row['answer'] or ''}"


class StudentSimilarity:
    """TF-IDF bags of the student tokenizer's tokens, IDF fitted on the student's own reference responses
    (one per prompt), so every arm is weighed by the same vocabulary; `similarity` is the cosine between a
    trace and the student's response to the same prompt (None where the prompt has none)."""

    def __init__(self, tokenizer, reference_rows: Sequence[dict]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.tokenizer = tokenizer
        self.vectorizer = TfidfVectorizer(analyzer=_identity, lowercase=False)
        refs = {r["prompt_id"]: response_text(r) for r in reference_rows}
        if not refs:
            raise ValueError("no reference responses of the student to fit the TF-IDF vocabulary on")
        self.ids = list(refs)
        self.matrix = self.vectorizer.fit_transform(self._tokens(list(refs.values())))
        self.row_of = {pid: i for i, pid in enumerate(self.ids)}

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        ids = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
        return [self.tokenizer.convert_ids_to_tokens(x) for x in ids]

    def similarity(self, rows: Sequence[dict]) -> list[float | None]:
        if not rows:
            return []
        vectors = self.vectorizer.transform(self._tokens([response_text(r) for r in rows]))
        out = []
        for k, row in enumerate(rows):
            i = self.row_of.get(row["prompt_id"])
            if i is None:
                out.append(None)
                continue
            # rows are L2-normalised: the dot product is the cosine (0 for a text with no known token)
            out.append(min(1.0, max(0.0, float(vectors[k].multiply(self.matrix[i]).sum()))))  # float rounding
        return out


def _identity(tokens):
    return tokens


def tfidf_similarity(tokenizer, reference_rows: Sequence[dict], rows: Sequence[dict]) -> list[float | None]:
    return StudentSimilarity(tokenizer, reference_rows).similarity(rows)


# --- all metrics of a corpus -----------------------------------------------------------------------------

def style_rates(nll: dict) -> dict:
    """Share of each author's (and all) student tokens labelled style; None where the author wrote none."""
    def rate(style: int, total: int) -> float | None:
        return style / total if total else None
    return {
        "style_rate": rate(nll["n_style_tokens"], nll["n_thinking_tokens"]),
        "style_rate_student": rate(nll["n_student_style_tokens"], nll["n_student_spans_tokens"]),
        "style_rate_teacher": rate(nll["n_teacher_style_tokens"], nll["n_teacher_spans_tokens"]),
    }


def teacher_token_share(row: dict) -> float:
    total = row.get("n_tokens_total") or 0
    return float(row.get("n_tokens_teacher") or 0) / total if total else 0.0


class DriftModels:
    """The student (causal LM and tokenizer) and both boundary predictors, loaded once for many corpora."""

    def __init__(self, student_dir, boundary_dir, *, context_tokens: int = 200, boundary_batch_size: int = 32):
        import torch
        from transformers import AutoModelForCausalLM

        from ..boundary.model import BoundaryPredictor
        from ..cooperate.generation import LocalTokenizer

        self.student_dir = Path(student_dir)
        self.local = LocalTokenizer(student_dir)
        self.model = AutoModelForCausalLM.from_pretrained(str(student_dir), dtype=torch.float32).eval()
        self.boundary = BoundaryPredictor(boundary_dir, context_tokens=context_tokens,
                                          batch_size=boundary_batch_size)


def compute_drift_metrics(rows: Sequence[dict], *, student_dir=None, boundary_dir=None,
                          reference_rows: Sequence[dict] = (), batch_size: int = 16,
                          progress: Callable[[str], None] | None = None, context_tokens: int = 200,
                          classifier_max_tokens: int = 512, models: DriftModels | None = None,
                          similarity: StudentSimilarity | None = None) -> list[dict]:
    """One dict of `METRIC_COLUMNS` per row (same order). `rows` are TRACES rows; `reference_rows` the
    student's own responses (TRACES rows of `student_only`, one per prompt) the similarity is measured
    against. `models` (a `DriftModels`) and `similarity` may be passed to reuse them across corpora."""
    rows = list(rows)
    if models is None:
        if student_dir is None or boundary_dir is None:
            raise ValueError("compute_drift_metrics needs student_dir and boundary_dir (or loaded models)")
        models = DriftModels(student_dir, boundary_dir, context_tokens=context_tokens, boundary_batch_size=batch_size)
    for i, row in enumerate(rows):
        for field in ("prompt_id", "prompt", "thinking"):
            if row.get(field) is None:
                raise ValueError(f"trace {i} ({row.get('prompt_id')!r}): field {field!r} is missing")
    if not rows:
        return []
    kinds = char_kinds(models.boundary, rows, max_tokens=classifier_max_tokens, batch_size=batch_size,
                       progress=progress)
    nll = student_nll(models.student_dir, rows, kinds, batch_size=batch_size, progress=progress,
                      model=models.model, local=models.local)
    if similarity is None and reference_rows:
        similarity = StudentSimilarity(models.local.tokenizer, reference_rows)
    sims = similarity.similarity(rows) if similarity is not None else [None] * len(rows)
    out = []
    for row, n, sim in zip(rows, nll, sims):
        out.append({**n, "similarity": sim, **style_rates(n), "teacher_token_share": teacher_token_share(row)})
    return out


# --- calibration on the student's own traces ------------------------------------------------------------

CALIBRATED_COLUMNS = ("nll_thinking", "nll_style", "nll_capability", "nll_answer", "similarity", "style_rate",
                      "style_rate_student")


def _summary(values: list[float]) -> dict:
    import numpy as np

    if not values:
        return {"n": 0, "mean": None, "std": None, "q05": None, "q50": None, "q95": None}
    a = np.asarray(values, dtype=float)
    q05, q50, q95 = (float(x) for x in np.quantile(a, [0.05, 0.5, 0.95]))
    return {"n": int(a.size), "mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
            "q05": q05, "q50": q50, "q95": q95}


def calibrate(reference_metrics: Sequence[dict], **provenance) -> dict:
    """The student's own traces' metrics, summarised: per calibrated column its count, mean, std (between
    traces) and 5/50/95% quantiles over the rows where it exists. `reference_metrics` are the metrics of a
    second student sample measured against the first (so `similarity` is the student's self-similarity);
    `provenance` (digests, sizes) is stored with it. JSON-serialisable; the drift gate's thresholds are
    relative to it, and it is saved beside the verdict."""
    metrics = list(reference_metrics)
    if not metrics:
        raise ValueError("no student traces to calibrate the drift gate on")
    return {
        "version": CALIBRATION_VERSION,
        "n_traces": len(metrics),
        "columns": {c: _summary([m[c] for m in metrics if m.get(c) is not None]) for c in CALIBRATED_COLUMNS},
        **({"provenance": provenance} if provenance else {}),
    }


def summarize(metrics: Sequence[dict]) -> dict:
    """Corpus-level figures: the mean of every metric over the rows where it exists, and the token-weighted
    mean NLL of every group (all its tokens pooled)."""
    metrics = list(metrics)
    out: dict = {"traces": len(metrics)}
    for column in METRIC_COLUMNS:
        values = [m[column] for m in metrics if m.get(column) is not None]
        out[f"mean_{column}"] = sum(values) / len(values) if values else None
    for name in [g[0] for g in NLL_GROUPS] + ["answer"]:
        n = sum(m[f"n_{name}_tokens"] for m in metrics)
        total = sum(m[f"nll_{name}"] * m[f"n_{name}_tokens"] for m in metrics if m[f"nll_{name}"] is not None)
        out[f"pooled_nll_{name}"] = total / n if n else None
    return out


def ended_normally(row: dict) -> bool:
    """The corpus filter's fixed rules that matter to a sample of the student's own (ended its thinking,
    answered, the answer stopped): its calibration traces are judged like a corpus' traces."""
    return row.get("ended") == "end_of_thinking" and row.get("answer_finish_reason") == "stop" and \
        bool((row.get("answer") or "").strip())


def corpus_drift(rows: Sequence[dict], *, student_dir, boundary_dir, student_responses_dir,
                 context_tokens: int = 200, classifier_max_tokens: int = 512, batch_size: int = 16,
                 progress: Callable[[str], None] | None = None) -> tuple[list[dict], dict]:
    """The drift metrics of a corpus' traces and the calibration they are judged against, in one call (the
    models loaded once): the similarity's reference and IDF are the student's `reference` sample
    (`student_responses_dir/reference/traces.parquet`), the calibration is the student's `calibration`
    sample (its traces that ended normally) measured the same way. Returns (one metrics dict per row, in
    order; the calibration, JSON-serialisable)."""
    from ..storage import read_table

    folder = Path(student_responses_dir)
    samples = {}
    for sample in ("reference", "calibration"):
        path = folder / sample / "traces.parquet"
        if not path.exists():
            raise FileNotFoundError(f"{path}: the student's own {sample} responses are missing; materialize "
                                    f"student_responses first")
        samples[sample] = read_table(path).to_pylist()
    models = DriftModels(student_dir, boundary_dir, context_tokens=context_tokens, boundary_batch_size=batch_size)
    similarity = StudentSimilarity(models.local.tokenizer, samples["reference"])
    own = [r for r in samples["calibration"] if ended_normally(r) and r["thinking"].strip()]
    kwargs = dict(models=models, similarity=similarity, batch_size=batch_size,
                  classifier_max_tokens=classifier_max_tokens, progress=progress)
    calibration = calibrate(compute_drift_metrics(own, **kwargs), student_responses=str(folder),
                            calibration_traces=len(own), calibration_sample=len(samples["calibration"]))
    return compute_drift_metrics(rows, **kwargs), calibration
