"""Figures of the artifacts as PNG bytes, for the Dagster UI: scores per model and suite, style drift per arm,
a corpus' teacher-share histogram, the boundary model's confusion and switch accuracy, trace length and
switches.

matplotlib is imported inside the functions (the code location loads without it), and figures are drawn on
`matplotlib.figure.Figure` directly (the Agg canvas, no pyplot state), so they are safe in any process.
The `*_figures(folder)` functions read an artifact folder and return {title: png}.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from .storage import read_table

DPI = 80
# Drift metrics drawn per arm: shares and rates in [0, 1], and the student's NLL in nats per token
RATE_METRICS = ("teacher_token_share", "style_rate", "style_rate_student", "style_rate_teacher", "similarity")
NLL_METRICS = ("nll_thinking", "nll_style", "nll_capability", "nll_answer")
OWN = "student (own)"  # the student's own responses, the drift gate's calibration


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})  # no version stamp: same data, same bytes
    return buffer.getvalue()


def _count_axis(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _grouped_bars(ax, groups: Sequence[str], series: dict[str, list], errors: dict[str, list] | None = None):
    """One cluster of bars per group, one bar per series; values may be None (no bar). `errors` holds per
    series (low, high) pairs or None. Returns the bars of each series."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(groups))
    bars = []
    for i, (name, values) in enumerate(series.items()):
        heights = [np.nan if v is None else v for v in values]
        yerr = None
        if errors and errors.get(name):
            below = [0 if e is None or v is None else max(0.0, v - e[0]) for v, e in zip(values, errors[name])]
            above = [0 if e is None or v is None else max(0.0, e[1] - v) for v, e in zip(values, errors[name])]
            yerr = [below, above]
        bars.append(ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name, yerr=yerr,
                           capsize=3))
    ax.set_xticks(x, groups)
    return bars


# --- the comparison -----------------------------------------------------------------------------------------

def scores_by_suite(rows: Sequence[dict]) -> bytes:
    """pass@1 per model (bars) and suite (clusters), with each bar's bootstrap interval as its error bar.
    `rows` are comparison rows; only whole-suite rows are drawn."""
    whole = [r for r in rows if r["bucket_kind"] == "suite"]
    suites = sorted({r["suite"] for r in whole})
    models = list(dict.fromkeys(r["model"] for r in whole))
    by = {(r["model"], r["suite"]): r for r in whole}
    fig, (ax,) = _figure(max(5.0, 2.5 + 0.5 * len(suites) * len(models)), 3.6)
    if not whole:
        _empty(ax, "no scored model")
        return _png(fig)
    values = {m: [by[(m, s)]["pass@1"] if (m, s) in by else None for s in suites] for m in models}
    errors = {m: [(by[(m, s)]["pass@1_ci_low"], by[(m, s)]["pass@1_ci_high"])
                  if (m, s) in by and by[(m, s)]["pass@1_ci_low"] is not None else None for s in suites]
              for m in models}
    for bars in _grouped_bars(ax, suites, values, errors):
        ax.bar_label(bars, fmt="%.2f", fontsize="x-small")  # a score of 0 still shows
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("pass@1 (95% CI over problems)")
    ax.set_title("Benchmark scores per model and suite")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def _mean_and_band(values: list) -> tuple[float | None, tuple[float, float] | None]:
    present = np.asarray([v for v in values if v is not None], dtype=float)
    if present.size == 0:
        return None, None
    low, high = np.quantile(present, [0.05, 0.95])
    return float(present.mean()), (float(low), float(high))


def drift_by_arm(metrics: dict[str, Sequence[dict]], calibration: dict | None = None) -> bytes:
    """Per arm the mean of each style-drift metric over its corpus' traces (error bars: 5..95% of the traces),
    beside the student's own responses (the calibration in drift_report.json, where given): shares and rates
    on the left, the student's NLL on the right."""
    fig, axes = _figure(11, 3.8, ncols=2)
    own = (calibration or {}).get("columns", {})
    for ax, names, label in ((axes[0], RATE_METRICS, "share / rate"), (axes[1], NLL_METRICS, "nats per token")):
        series, errors = {}, {}
        for arm, rows in metrics.items():
            stats = [_mean_and_band([r.get(n) for r in rows]) for n in names]
            series[arm], errors[arm] = [s[0] for s in stats], [s[1] for s in stats]
        if own:
            cols = [own.get(n) or {} for n in names]
            series[OWN] = [c.get("mean") for c in cols]
            errors[OWN] = [(c["q05"], c["q95"]) if c.get("q05") is not None else None for c in cols]
        if not any(v is not None for values in series.values() for v in values):
            _empty(ax, "no drift metrics")
            continue
        _grouped_bars(ax, [n.replace("nll_", "").replace("_", "\n") for n in names], series, errors)
        ax.set_ylabel(label)
    handles, labels = next((ax.get_legend_handles_labels() for ax in axes if ax.get_legend_handles_labels()[0]),
                           ([], []))
    if handles:
        fig.legend(handles, labels, loc="outside right upper", fontsize="small")
    axes[0].set_xlabel("bars: mean over traces; whiskers: 5..95% of traces")
    axes[0].set_title("Style drift per arm: shares and style rates")
    axes[1].set_title("The student's NLL of each corpus")
    return _png(fig)


def teacher_share_histogram(shares: Sequence[float], arm: str) -> bytes:
    """How much of each kept trace the teacher wrote (its tokens over all, in the student's tokenizer)."""
    fig, (ax,) = _figure(5.5, 3.4)
    shares = [s for s in shares if s is not None]
    if not shares:
        _empty(ax, f"{arm}: no kept traces")
        return _png(fig)
    ax.hist(shares, bins=np.linspace(0, 1, 21), color="tab:orange", edgecolor="white")
    mean = float(np.mean(shares))
    ax.axvline(mean, color="black", linestyle="--", label=f"mean {mean:.2f}")
    ax.set_xlim(0, 1)
    ax.set_xlabel("teacher token share of the trace")
    ax.set_ylabel("traces")
    _count_axis(ax)
    ax.set_title(f"Teacher share per trace: {arm} corpus ({len(shares)} traces)")
    ax.legend(fontsize="small")
    return _png(fig)


def boundary_eval(report: dict) -> bytes:
    """The held-out confusion (true kind x predicted kind, token counts) of each predictor, and their
    first-switch accuracy, exact and within one word (mixed-author windows too, where evaluated)."""
    names = list(report)
    fig, axes = _figure(6 + 3.2 * len(names), 3.6, ncols=len(names) + 1)
    for ax, name in zip(axes, names):
        h = report[name]["held_out"]
        counts = np.array([[h["true_style"], h["missed_style"]], [h["false_style"], h["true_capability"]]])
        share = counts / np.maximum(1, counts.sum(axis=1, keepdims=True))
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for i in range(2):
            for j in range(2):
                ax.text(j, i, f"{counts[i, j]}\n{share[i, j]:.0%}", ha="center", va="center",
                        color="white" if share[i, j] > 0.6 else "black")
        ax.set_xticks([0, 1], ["style", "capability"])
        ax.set_yticks([0, 1], ["style", "capability"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name} ({report[name]['role']}): style F1 {h['style_f1']:.2f}")
    ax = axes[-1]
    groups, series = [], {"exact": [], "within one word": []}
    for name in names:
        for label, key in ((name, "held_out"), (f"{name} mixed", "held_out_mixed")):
            h = report[name].get(key)
            if h:
                groups.append(f"{label}\n{h['switch_cases']} cases")
                series["exact"].append(h["switch_exact"])
                series["within one word"].append(h["switch_within_one_word"])
    _grouped_bars(ax, groups, series)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of chunks")
    ax.set_title("First-switch accuracy")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _png(fig)


def trace_lengths(rows: Sequence[dict], arm: str) -> bytes:
    """Tokens per trace by author (student's tokenizer) and the number of author switches per trace."""
    fig, axes = _figure(10, 3.4, ncols=2)
    if not rows:
        for ax in axes:
            _empty(ax, f"{arm}: no traces")
        return _png(fig)
    lengths = {who: [r[f"n_tokens_{who}"] or 0 for r in rows] for who in ("total", "student", "teacher")}
    top = max(1, max(lengths["total"]))
    bins = np.linspace(0, top, min(30, top) + 1)
    for who, values in lengths.items():
        axes[0].hist(values, bins=bins, histtype="step", linewidth=2,
                     label="all tokens" if who == "total" else f"the {who}'s")
    axes[0].set_xlabel("tokens per trace")
    axes[0].set_ylabel("traces")
    _count_axis(axes[0])
    axes[0].set_title(f"Trace length: {arm} ({len(rows)} traces)")
    axes[0].legend(fontsize="small")
    switches = [r["n_switches"] or 0 for r in rows]
    axes[1].hist(switches, bins=np.arange(-0.5, max(switches) + 1.5, 1), color="tab:green", edgecolor="white")
    axes[1].set_xlabel("author switches per trace")
    axes[1].set_ylabel("traces")
    _count_axis(axes[1])
    axes[1].set_title(f"Switches: mean {np.mean(switches):.1f}")
    return _png(fig)


# --- from artifact folders ----------------------------------------------------------------------------------

def boundary_figures(folder) -> dict[str, bytes]:
    report = json.loads((Path(folder) / "eval.json").read_text())
    return {"confusion and switch accuracy": boundary_eval(report)}


def _drift_rows(folder) -> list[dict]:
    from .corpus.filters import DRIFT_FILE

    return read_table(Path(folder) / DRIFT_FILE).to_pylist()


def _calibration(folder) -> dict | None:
    from .corpus.run import DRIFT_REPORT

    return json.loads((Path(folder) / DRIFT_REPORT).read_text()).get("calibration")


def drift_figure(corpus_dirs: dict[str, Path]) -> bytes:
    """`drift_by_arm` of the corpora of several arms (arm -> sft_corpus folder). Every corpus is calibrated on
    the student's own responses; the first corpus' calibration is drawn."""
    first = next(iter(corpus_dirs.values()), None)
    return drift_by_arm({arm: _drift_rows(folder) for arm, folder in corpus_dirs.items()},
                        _calibration(first) if first else None)


def corpus_figures(folder, arm: str) -> dict[str, bytes]:
    rows = _drift_rows(folder)
    return {"teacher share histogram": teacher_share_histogram([r["teacher_token_share"] for r in rows], arm),
            "style drift": drift_by_arm({arm: rows}, _calibration(folder))}


def trace_figures(folder, arm: str) -> dict[str, bytes]:
    rows = read_table(Path(folder) / "traces.parquet").select(
        ["n_tokens_total", "n_tokens_student", "n_tokens_teacher", "n_switches"]).to_pylist()
    return {"trace length and switches": trace_lengths(rows, arm)}
