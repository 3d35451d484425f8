"""pass@k and the per-suite summary of scored samples."""

from __future__ import annotations

from collections import defaultdict


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased estimate 1 - C(n-c, k) / C(n, k) of one problem with c of n samples correct, in the
    Codex paper's product form (no huge binomials): 1 - prod_{i=n-c+1..n} (1 - k/i)."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def _scores(per_problem: dict[str, list[bool]], ks) -> dict:
    out = {"n_problems": len(per_problem), "n_samples": sum(map(len, per_problem.values()))}
    # pass@1 is the mean over samples of each problem, then over problems (= pass_at_k(n, c, 1))
    out["pass@1"] = sum(sum(s) / len(s) for s in per_problem.values()) / len(per_problem)
    for k in ks:
        if k == 1:
            continue
        short = {p: len(s) for p, s in per_problem.items() if len(s) < k}
        if short:
            first = next(iter(short))
            raise ValueError(f"pass@{k} needs at least {k} samples per problem; {first} has {short[first]}")
        out[f"pass@{k}"] = sum(pass_at_k(len(s), sum(s), k) for s in per_problem.values()) / len(per_problem)
    return out


def summarize_scores(rows: list[dict], ks=(1,)) -> dict:
    """From per-sample rows (problem_id, suite, difficulty, release_date, sample, passed, thinking_tokens,
    truncated), per suite: n_problems, n_samples, pass@1 and pass@k for each k, mean_thinking_tokens,
    truncation_rate, and the same scores by_difficulty (toy: the step count) and by_release_month
    (YYYY-MM; suites without dates have none)."""
    if not rows:
        raise ValueError("no scored samples to summarize")
    ks = sorted(set(int(k) for k in ks) | {1})
    suites = defaultdict(list)
    for r in rows:
        suites[r["suite"]].append(r)
    summary = {}
    for suite, items in suites.items():
        per_problem = defaultdict(list)
        buckets = {"by_difficulty": defaultdict(lambda: defaultdict(list)),
                   "by_release_month": defaultdict(lambda: defaultdict(list))}
        seen = set()
        for r in items:
            key = (r["problem_id"], r.get("sample", 0))
            if key in seen:
                raise ValueError(f"suite {suite}: problem {r['problem_id']} sample {key[1]} appears twice")
            seen.add(key)
            passed = bool(r["passed"])
            per_problem[r["problem_id"]].append(passed)
            if r.get("difficulty"):
                buckets["by_difficulty"][r["difficulty"]][r["problem_id"]].append(passed)
            if r.get("release_date"):
                buckets["by_release_month"][str(r["release_date"])[:7]][r["problem_id"]].append(passed)
        out = _scores(per_problem, ks)
        out["mean_thinking_tokens"] = sum(float(r.get("thinking_tokens") or 0) for r in items) / len(items)
        out["truncation_rate"] = sum(bool(r.get("truncated")) for r in items) / len(items)
        for name, groups in buckets.items():
            out[name] = {b: _scores(dict(g), ks) for b, g in sorted(groups.items())}
        summary[suite] = out
    return summary
