"""A team's model folder, read where it is (nothing is copied): checked, and described for the input asset.

`inspect_model_folder(path, needs_weights=...)` fails with an error naming the folder, the missing file and
what to fix when the folder is missing, has no tokenizer, no chat template, a template without a thinking
section, or (when the model runs here, not behind a server) no `config.json` or no weights. It returns the
folder's content digest, the architecture, the parameter count (summed from the safetensors headers, no
weights loaded), the context length, the vocabulary size, the dtype and the thinking format's markers.
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from math import prod
from pathlib import Path

from ..chat_format import detect_thinking_format
from ..storage import digest_dir

RECORD = "model.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt")
CHAT_TEMPLATE_FILES = ("chat_template.jinja", "chat_template.json")
SAFETENSORS_INDEX = "model.safetensors.index.json"
_SANE_CONTEXT = 10 ** 7  # transformers' "no limit known" model_max_length is about 1e30
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "F8_E4M3": "float8_e4m3fn",
           "F8_E5M2": "float8_e5m2", "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
           "BOOL": "bool"}


def safetensors_header(path: str | Path) -> dict:
    """The JSON header of a .safetensors file (8-byte little-endian length, then the JSON): tensor name ->
    {dtype, shape, data_offsets}, plus `__metadata__`. Reads only the header, never the weights."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        (length,) = struct.unpack("<Q", head)
        if length > 100 * 2 ** 20 or length > path.stat().st_size - 8:
            raise ValueError(f"{path}: not a safetensors file (header length {length} does not fit the file)")
        try:
            return json.loads(f.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: not a safetensors file (its header is not JSON: {err})") from None


def _tensor_parameters(name: str, info: dict) -> int:
    """Parameters a stored tensor holds. MXFP4 checkpoints (GPT-OSS) store two 4-bit values per byte in
    `*_blocks` (uint8) with per-block `*_scales` (quantization metadata, not parameters)."""
    n = prod(info["shape"])
    if info["dtype"] == "U8" and name.endswith("_scales"):
        return 0
    if info["dtype"] == "U8" and name.endswith("_blocks"):
        return 2 * n
    return n


def _weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, pytorch .bin files) of the folder; a safetensors index names its shards, each of
    which must be there."""
    index = folder / SAFETENSORS_INDEX
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise ValueError(f"{index}: not a safetensors index (no weight_map: {err!r}); re-save the model "
                             f"with save_pretrained") from None
        shards = [folder / name for name in sorted(set(weight_map.values()))]
        missing = [s.name for s in shards if not s.exists()]
        if missing:
            raise FileNotFoundError(f"{folder}: {SAFETENSORS_INDEX} names shards that are not there "
                                    f"({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); copy the "
                                    f"whole model folder")
        return shards, []
    return sorted(folder.glob("*.safetensors")), sorted(folder.glob("pytorch_model*.bin"))


def _parameters(shards: list[Path]) -> tuple[int, Counter]:
    total, dtypes = 0, Counter()
    for shard in shards:
        for name, info in safetensors_header(shard).items():
            if name == "__metadata__":
                continue
            n = _tensor_parameters(name, info)
            total += n
            dtypes[info["dtype"]] += n
    return total, dtypes


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); fix or re-save the file") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def _has_chat_template(folder: Path, tokenizer_config: dict) -> bool:
    return bool(tokenizer_config.get("chat_template")) or any((folder / f).exists() for f in CHAT_TEMPLATE_FILES)


def _config_value(config: dict, *names: str):
    """The first of `names` in the config or in its text model's (`text_config`, multimodal configs)."""
    for scope in (config, config.get("text_config") or {}):
        for name in names:
            if scope.get(name) is not None:
                return scope[name]
    return None


def inspect_model_folder(path: str | Path, *, needs_weights: bool, needs_thinking: bool = True) -> dict:
    """Check a model folder and describe it (see the module's docstring).

    `needs_weights`: the model runs here (False for a model served elsewhere, whose folder may hold only its
    tokenizer; `config.json` is then optional too, and architecture and parameters come back None when it
    is absent). `needs_thinking`: the model must have a chat template with a thinking section (False for an
    annotator or another model that only answers: then neither is required)."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: the model folder does not exist; point the settings at a "
                                f"save_pretrained folder (or a served model's tokenizer folder)")
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder; point the settings at a save_pretrained folder")
    config_path = folder / "config.json"
    config = _read_json(config_path) if config_path.exists() else None
    if config is None and needs_weights:
        raise FileNotFoundError(f"{folder}: config.json is missing; the model runs here and needs it: save the "
                                f"model with save_pretrained (or set an endpoint if it is served elsewhere)")
    shards, bins = _weight_files(folder)
    if needs_weights and not shards and not bins:
        raise FileNotFoundError(f"{folder}: no weights (*.safetensors, {SAFETENSORS_INDEX} or pytorch_model*.bin); "
                                f"copy the model's weight files here (or set an endpoint if it is served elsewhere)")
    if not any((folder / f).exists() for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"{folder}: no tokenizer ({', '.join(TOKENIZER_FILES)}); save the tokenizer "
                                f"with save_pretrained into this folder")
    tokenizer_config_path = folder / "tokenizer_config.json"
    tokenizer_config = _read_json(tokenizer_config_path) if tokenizer_config_path.exists() else {}
    has_template = _has_chat_template(folder, tokenizer_config)
    if needs_thinking and not has_template:
        raise ValueError(f"{folder}: the tokenizer has no chat template (no chat_template in "
                         f"tokenizer_config.json, no {' or '.join(CHAT_TEMPLATE_FILES)}); save the model's chat "
                         f"template with its tokenizer")
    tokenizer = _load_tokenizer(folder)
    fmt = None
    if has_template:
        try:
            fmt = detect_thinking_format(tokenizer, folder)
        except ValueError:
            if needs_thinking:
                raise
    parameters, weight_dtypes = _parameters(shards) if shards else (None, Counter())
    config = config or {}
    architectures = config.get("architectures") or []
    dtype = _config_value(config, "dtype", "torch_dtype")
    if dtype is None and weight_dtypes:
        dtype = _DTYPES.get(weight_dtypes.most_common(1)[0][0], weight_dtypes.most_common(1)[0][0])
    context = _config_value(config, "max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
    if context is None:
        limit = tokenizer_config.get("model_max_length") or getattr(tokenizer, "model_max_length", None)
        context = int(limit) if isinstance(limit, (int, float)) and 0 < limit < _SANE_CONTEXT else None
    vocab = _config_value(config, "vocab_size")
    return {
        "path": str(folder.resolve()),
        "digest": digest_dir(folder),
        "architecture": architectures[0] if architectures else config.get("model_type"),
        "model_type": config.get("model_type"),
        # None without safetensors (a served model's tokenizer folder; .bin weights are not opened here)
        "parameters": parameters,
        "context_length": int(context) if context is not None else None,
        "vocab_size": int(vocab) if vocab is not None else len(tokenizer),
        "tokenizer_size": len(tokenizer),
        "dtype": str(dtype) if dtype is not None else None,
        "has_weights": bool(shards or bins),
        "weight_files": len(shards) + len(bins),
        "weight_bytes": sum(f.stat().st_size for f in shards + bins),
        "chat_template": has_template,
        "thinking_format": fmt.family if fmt else None,
        "think_start": fmt.think_start if fmt else None,
        "think_end": fmt.think_end if fmt else None,
    }


def _load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except Exception as err:  # transformers raises many kinds for a broken folder
        raise ValueError(f"{folder}: the tokenizer does not load ({type(err).__name__}: {err}); re-save it with "
                         f"save_pretrained") from err


def write_model_record(record: dict, out_dir: str | Path) -> dict:
    """Write the inspection record beside the asset's manifest (`model.json`); return its numbers as
    metrics."""
    Path(out_dir, RECORD).write_text(json.dumps(record, indent=2, sort_keys=True))
    return {k: v for k, v in record.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None}
