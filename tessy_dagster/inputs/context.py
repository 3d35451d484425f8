"""Each model's context and token counter, from its input asset: what the prompts are checked against."""

from __future__ import annotations

import json
from pathlib import Path

from ..storage import data_location, read_manifest
from .models import RECORD
from .prompts import TokenCounter


def model_context_limits(model_artifacts: dict[str, str | Path]) -> dict[str, tuple[int, TokenCounter]]:
    """(context length, token counter) per model, from each model asset's folder (model name -> folder).
    A model whose context is unknown (a served model's tokenizer folder without a config) is left out."""
    from transformers import AutoTokenizer

    limits = {}
    for name, artifact in model_artifacts.items():
        record_path = Path(artifact) / RECORD
        if not record_path.exists():
            raise FileNotFoundError(f"{record_path} is missing: materialize the {name} model asset first")
        context = json.loads(record_path.read_text()).get("context_length")
        if context is None:
            continue
        tokenizer = AutoTokenizer.from_pretrained(data_location(artifact, read_manifest(artifact)))

        def count(texts: list[str], tokenizer=tokenizer) -> list[int]:
            return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

        limits[name] = (int(context), count)
    return limits
