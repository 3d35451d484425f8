"""What cooperation costs: the same prompts through `teacher_only` and `tessy` on one backend; writes JSON.

Not a test: a measurement on the artifacts of a `make demo` run (TESSY_HOME, default .tessy/). For each arm:
wall time, output tokens per second (kept thinking tokens, counted with the student's tokenizer, plus the
answer tokens), and for tessy the share of wall time spent in the boundary model and the rollback waste
(tokens generated, then cut at a boundary). The ratio tessy / teacher_only is the figure to watch. The
machine is shared and noisy, so after one untimed pass over a full batch the two arms run in turn
`--repeats` times; the report gives each pair's ratio and their median, and each arm's figures from its
median run. On `hf` it also gives the ratio over the models' forward time alone (generation and boundary
models): how far work outside the models could move it. Run it on another home's models with TESSY_HOME,
e.g. the larger toy teacher of examples/toy_large_teacher.json (see the README).

    .venv/bin/python benchmarks/cooperation_cost.py --backend hf --prompts 256 --out benchmarks/results/cost_hf.json
    .venv/bin/python benchmarks/cooperation_cost.py --backend vllm --settings examples/vllm_cpu.json \
        --prompts 256 --out benchmarks/results/cost_vllm_cpu.json
    bash benchmarks/vllm_cpu_servers.sh && .venv/bin/python benchmarks/cooperation_cost.py --backend openai \
        --settings examples/openai_vllm_cpu_servers.json --out benchmarks/results/cost_openai_vllm_cpu_servers.json
"""

import argparse
import functools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

from tessy_dagster.boundary.model import BoundaryPredictor
from tessy_dagster.cooperate.engine import CooperativeEngine
from tessy_dagster.cooperate.generation import load_generator
from tessy_dagster.settings import load_settings
from tessy_dagster.storage import artifact_dir, read_table, tessy_home


def timed(function, tally):
    """`function`, adding its calls and seconds to `tally.calls` and `tally.seconds`. wraps() keeps its
    signature visible: transformers' generate reads a model's forward signature to decide, among other
    things, whether to pass position ids (without them left padding shifts the positions)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            tally.seconds += time.perf_counter() - start
            tally.calls += 1
    return wrapper


class Timed:
    """Wraps an object and adds up the seconds spent in one of its methods (and, for a generator's
    `generate`, the tokens it returned: decode positions, whatever the backend)."""

    def __init__(self, inner, method: str):
        self.inner, self.method, self.seconds, self.calls, self.tokens_out = inner, method, 0.0, 0, 0
        self.cut_stops = 0  # generations stopped at a cut while decoding

    def __getattr__(self, name):
        attr = getattr(self.inner, name)
        if name == "request":  # the openai backend without a round barrier: one request at a time, async
            async def request(*args, **kwargs):
                out = await attr(*args, **kwargs)
                self.tokens_out += out.n_tokens
                self.calls += 1
                return out
            return request
        if name != self.method:
            return attr
        if name != "generate":
            return timed(attr, self)

        def generate(*args, **kwargs):
            outs = timed(attr, self)(*args, **kwargs)
            self.tokens_out += sum(o.n_tokens for o in outs)
            self.cut_stops += sum(o.finish_reason == "cut" for o in outs)
            return outs
        return generate


class TimedBoundary(Timed):
    """The boundary model, its seconds added up over `switch_starts` (the round engine's question after a
    chunk) and over its followers' `advance` (cutting while decoding, called inside generate)."""

    def __init__(self, inner):
        super().__init__(inner, "switch_starts")

    def follow(self, role, contexts):
        follower = self.inner.follow(role, contexts)
        follower.advance = timed(follower.advance, self)
        return follower


class ForwardTimer:
    """Adds up the seconds inside the torch modules' forward passes (the `hf` backend's models and the
    boundary predictors): the model work, as apart from the engine's and the backend's own overhead."""

    def __init__(self, modules):
        self.modules, self.seconds, self.calls = list(modules), 0.0, 0

    def __enter__(self):
        for module in self.modules:
            module.forward = timed(module.forward, self)  # an instance attribute: shadows the class's forward
        return self

    def __exit__(self, *exc):
        for module in self.modules:
            del module.forward


def torch_modules(models, boundary) -> tuple[list, list]:
    """The generators' torch modules (empty for vllm: its model runs inside the engine) and the boundary's."""
    generation = [m.model for m in models.values() if hasattr(getattr(m, "model", None), "forward")]
    return generation, [model for _, model in boundary.predictors.values()] if boundary else []


def parameter_count(model_dir: Path) -> int:
    """Parameters in a saved model's safetensors files (tied weights are stored once)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), "np") as f:
            total += sum(math.prod(f.get_slice(name).get_shape()) for name in f.keys())
    return total


def prompt_token_counts(models) -> tuple[int | None, int | None]:
    """Prompt tokens the generation models have computed and taken from their caches, so far (None where a
    backend cannot tell: a server that does not report cached tokens)."""
    if any(getattr(m, "computed_tokens", None) is None for m in models.values()):
        return None, None
    return (sum(m.computed_tokens for m in models.values()), sum(m.reused_tokens for m in models.values()))


def cost_per_finished_trace(rows, models, generators, prefill_before, boundary_tokens: int,
                            parameters: dict) -> dict:
    """Tokens each model processed and the compute they cost, per finished trace (one whose thinking ended
    by itself: a retried or truncated sample costs its tokens and yields no trace). Compute is the usual
    2 x parameters x tokens for each model, prefill (prompt tokens run through the model) and decode (tokens
    generated) apart; attention over the context is left out, as the approximation does."""
    finished = sum(r["ended"] == "end_of_thinking" for r in rows)
    tokens, flops = {}, {}
    for role, model in models.items():
        kept_thinking = sum(r[f"n_own_tokens_{role}"] for r in rows)
        answers = [r["answer"] for r in rows if r["answer_author"] == role]
        prefill = None if prefill_before[role] is None else model.computed_tokens - prefill_before[role]
        tokens[role] = {"prefill": prefill, "decode": generators[role].tokens_out,
                        "kept": kept_thinking + sum(model.count_tokens(answers))}
        flops[f"{role}_prefill"] = None if prefill is None else 2 * parameters[role] * prefill
        flops[f"{role}_decode"] = 2 * parameters[role] * generators[role].tokens_out
    tokens["boundary"] = boundary_tokens
    flops["boundary"] = 2 * parameters["boundary"] * boundary_tokens
    per_trace = {k: None if v is None or not finished else round(v / finished) for k, v in flops.items()}
    per_trace["total"] = (None if not finished or any(v is None for v in flops.values())
                          else round(sum(flops.values()) / finished))
    return {"finished_traces": finished, "tokens": tokens, "flops_per_finished_trace": per_trace}


def run_arm(arm, prompts, models, boundary, settings, parameters: dict, report: bool = True) -> dict:
    generators = {role: Timed(model, "generate") for role, model in models.items()}
    prefill_before = {role: getattr(model, "computed_tokens", None) for role, model in models.items()}
    boundary_before = boundary.tokens_computed if boundary else 0
    timed_boundary = TimedBoundary(boundary) if boundary else None
    engine = CooperativeEngine(generators, timed_boundary, settings, provenance={}, progress=lambda m: None)
    generation_modules, boundary_modules = torch_modules(models, boundary)
    before = prompt_token_counts(models)
    start = time.perf_counter()
    with ForwardTimer(generation_modules) as generation_forward, ForwardTimer(boundary_modules) as boundary_forward:
        rows = engine.run(arm, prompts)
    wall = time.perf_counter() - start
    computed, reused = (None if first is None else after - first
                        for after, first in zip(prompt_token_counts(models), before))
    answer_tokens = sum(models["student"].count_tokens([r["answer"] for r in rows]))
    thinking_tokens = sum(r["n_tokens_total"] for r in rows)
    generated = sum(r["n_own_tokens_teacher"] + r["n_own_tokens_student"] + r["rollback_tokens"] for r in rows)
    result = {
        "arm": arm, "traces": len(rows), "wall_seconds": round(wall, 2),
        "output_tokens": thinking_tokens + answer_tokens,
        "output_tokens_per_second": round((thinking_tokens + answer_tokens) / wall, 1),
        # seconds inside generate (None without a round barrier: its requests overlap, their time is no sum)
        "generation_seconds": round(sum(g.seconds for g in generators.values()), 2)
        if any(g.seconds for g in generators.values()) else None,
        "generation_calls": sum(g.calls for g in generators.values()),
        "boundary_seconds": round(timed_boundary.seconds, 2) if timed_boundary else 0.0,
        "boundary_share_of_wall": round(timed_boundary.seconds / wall, 4) if timed_boundary else 0.0,
        # hf only (None on vllm): seconds in model forward passes, generation and boundary
        "model_forward_seconds": round(generation_forward.seconds + boundary_forward.seconds, 2)
        if generation_modules else None,
        # prompt tokens (over every call, the answers' included) the generation models ran through a forward
        # pass, and those their caches supplied: each round re-sends the whole trace so far
        "prompt_tokens_computed": computed, "prompt_tokens_from_cache": reused,
        "rollback_tokens": sum(r["rollback_tokens"] for r in rows),
        "thinking_tokens": thinking_tokens, "switches": sum(r["n_switches"] for r in rows),
        "rollback_share_of_generated": round(sum(r["rollback_tokens"] for r in rows) / generated, 4) if generated else 0.0,
        # Of those, the ones a model also ran a forward pass on: a sequence stopped at its cut while decoding
        # never feeds back its last sampled token (the one that showed the switch).
        "rollback_fed_share_of_generated": round((sum(r["rollback_tokens"] for r in rows)
                                                  - sum(g.cut_stops for g in generators.values())) / generated, 4)
        if generated else 0.0,
        "teacher_token_share": round(sum(r["n_tokens_teacher"] for r in rows) / thinking_tokens, 4) if thinking_tokens else 0.0,
        "ended": {e: sum(r["ended"] == e for r in rows) for e in sorted({r["ended"] for r in rows})},
        **cost_per_finished_trace(rows, models, generators, prefill_before,
                                  boundary.tokens_computed - boundary_before if boundary else 0, parameters),
    }
    if report:
        print(json.dumps(result), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default=os.environ.get("TESSY_PROFILE", "toy"))
    parser.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"],
                        help="openai: servers named in the settings, e.g. started by benchmarks/vllm_cpu_servers.sh")
    parser.add_argument("--settings", default=None, help="a JSON overrides file, e.g. examples/vllm_cpu.json")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=None,
                        help="sequences in flight (cooperate.batch_size); default: the settings'")
    parser.add_argument("--round-engine", action="store_true",
                        help="hf: k tokens a round, then cut and roll back (cooperate.cut_while_decoding off)")
    parser.add_argument("--round-barrier", action="store_true",
                        help="openai: the round engine (cooperate.pipelined_requests off)")
    parser.add_argument("--chunk-lengths", choices=["fixed", "learned"], default=None,
                        help="vllm, openai, --round-engine: cooperate.chunk_lengths (default: the settings')")
    parser.add_argument("--chunk-quantile", type=float, default=None)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    import torch

    settings = load_settings(args.profile, args.settings)
    coop = settings.cooperate.model_copy(update={"generation": settings.cooperate.generation.model_copy(
        update={"backend": args.backend})})
    if args.in_flight:
        coop = coop.model_copy(update={"batch_size": args.in_flight})
    if args.round_engine:
        coop = coop.model_copy(update={"cut_while_decoding": False})
    if args.round_barrier:
        coop = coop.model_copy(update={"pipelined_requests": False})
    if args.chunk_lengths:
        coop = coop.model_copy(update={"chunk_lengths": args.chunk_lengths})
    if args.chunk_quantile:
        coop = coop.model_copy(update={"chunk_quantile": args.chunk_quantile})
    home = tessy_home()
    prompts = sorted((r["problem_id"], r["prompt"])
                     for r in read_table(artifact_dir(home, "prompts") / "prompts.parquet").to_pylist())[:args.prompts]
    models = {role: load_generator(artifact_dir(home, f"{role}_model"), coop.generation, role=role)
              for role in ("teacher", "student")}
    boundary = BoundaryPredictor(artifact_dir(home, "boundary_model"), context_tokens=settings.boundary.context_tokens,
                                 batch_size=coop.batch_size)
    # Each token goes through one predictor (its role's), and the two are the same size.
    parameters = {**{role: parameter_count(model.model_dir) for role, model in models.items()},
                  "boundary": parameter_count(artifact_dir(home, "boundary_model") / "teacher")}
    runs = {"teacher_only": [], "tessy": []}
    # A first pass over one full batch, not timed: the first calls into a model are slow (allocations, lazy
    # imports), and without it the arm that happens to run first would pay for that.
    for arm in runs:
        run_arm(arm, prompts[:coop.batch_size], models, boundary if arm == "tessy" else None, coop, parameters,
                report=False)
    for repeat in range(args.repeats):
        torch.manual_seed(coop.seed + repeat)
        for arm in runs:
            runs[arm].append(run_arm(arm, prompts, models, boundary if arm == "tessy" else None, coop, parameters))
    ratios = [round(b["output_tokens_per_second"] / a["output_tokens_per_second"], 3)
              for a, b in zip(runs["teacher_only"], runs["tessy"])]
    # The same ratio over model forward time alone (hf): where it would stand if the engine and the backend
    # cost nothing beyond the models, so the most that engineering outside the models can reach.
    forward_ratios = [round((b["output_tokens"] / b["model_forward_seconds"])
                            / (a["output_tokens"] / a["model_forward_seconds"]), 3)
                      for a, b in zip(runs["teacher_only"], runs["tessy"]) if a["model_forward_seconds"]]
    results = {arm: sorted(rs, key=lambda r: r["output_tokens_per_second"])[len(rs) // 2] for arm, rs in runs.items()}
    report = {
        "backend": args.backend, "profile": args.profile, "settings_file": args.settings, "prompts": len(prompts),
        "generation": coop.generation.model_dump(),
        "model_parameters": parameters, "cut_while_decoding": coop.cut_while_decoding and args.backend == "hf",
        "turn_tokens": coop.turn_tokens,
        "pipelined_requests": coop.pipelined_requests and args.backend == "openai",
        "chunk_lengths": coop.chunk_lengths, "chunk_quantile": coop.chunk_quantile,
        "sequences_in_flight": coop.batch_size, "chunk_tokens": {"teacher": coop.teacher_chunk_tokens,
                                                                  "student": coop.student_chunk_tokens},
        "tessy_over_teacher_only_tokens_per_second": statistics.median(ratios),
        "ratio_per_repeat": ratios,
        "model_forward_only_ratio": statistics.median(forward_ratios) if forward_ratios else None,
        "model_forward_only_ratio_per_repeat": forward_ratios,
        "tokens_per_second_per_repeat": {arm: [r["output_tokens_per_second"] for r in rs] for arm, rs in runs.items()},
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "arms": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "arms"}))


if __name__ == "__main__":
    main()
