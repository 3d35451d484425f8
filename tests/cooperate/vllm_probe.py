"""Run by test_vllm_backend in its own process (vLLM changes process-wide torch state): greedy text from
the vllm backend and from transformers, for the same prompts; prints JSON."""

import json
import sys

from tessy_dagster.cooperate.generation import load_generator
from tessy_dagster.cooperate.hf_backend import HFGenerator
from tessy_dagster.settings import GenerationSettings, SamplingSettings

if __name__ == "__main__":
    model_dir, settings = sys.argv[1], GenerationSettings.model_validate_json(sys.argv[2])
    vllm = load_generator(model_dir, settings, role="teacher")
    prompts = [vllm.chat_prompt(f"Write a Python function f(x) that transforms x in order: step 1 adds {k}.")
               for k in range(1, 5)]
    greedy = SamplingSettings(temperature=0.0)
    got = {"vllm": vllm.generate(prompts, 24, greedy, stop_at_think_end=True),
           "hf": HFGenerator(model_dir, batch_size=1).generate(prompts, 24, greedy, stop_at_think_end=True),
           "vllm_short": vllm.generate(prompts[:1], 3, SamplingSettings(), stop_at_think_end=True)}
    print(json.dumps({k: [g.__dict__ for g in v] for k, v in got.items()}))
