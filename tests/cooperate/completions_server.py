"""A small OpenAI-compatible completions server around a local model, for testing the `openai` backend.

    python tests/cooperate/completions_server.py --model DIR --port 8011 [--fail-first N] [--api-key KEY]

Answers POST /v1/completions like vLLM does (finish_reason, and stop_reason naming the stop string that
ended the text) and GET /health. `--fail-first N` answers the first N completion requests with HTTP 503,
to exercise the client's retries. `--api-key KEY` refuses completion requests without `Authorization: Bearer
KEY` (HTTP 401), as `vllm serve --api-key` does.
"""

import argparse
import threading

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tessy_dagster.cooperate.hf_backend import HFGenerator
from tessy_dagster.settings import SamplingSettings


def make_app(model_dir: str, served_name: str, fail_first: int, api_key: str | None = None) -> Starlette:
    generator = HFGenerator(model_dir, batch_size=1)
    lock = threading.Lock()
    state = {"failures_left": fail_first}

    def complete(body: dict) -> dict:
        stop = body.get("stop") or []
        if stop not in ([], [generator.think_end]):
            raise ValueError(f"this test server stops only at {generator.think_end!r}, got {stop!r}")
        sampling = SamplingSettings(temperature=body.get("temperature", 1.0), top_p=body.get("top_p", 1.0),
                                    top_k=max(0, body.get("top_k", 0)))
        with lock:
            [out] = generator.generate([body["prompt"]], int(body["max_tokens"]), sampling, stop_at_think_end=bool(stop))
        finish = "length" if out.finish_reason == "length" else "stop"
        stop_reason = generator.think_end if out.finish_reason == "think_end" else None
        return {"object": "text_completion", "model": served_name,
                "choices": [{"index": 0, "text": out.text, "finish_reason": finish, "stop_reason": stop_reason}],
                # this server keeps no prefix cache: every prompt token is computed
                "usage": {"completion_tokens": out.n_tokens, "prompt_tokens": generator.count_tokens([body["prompt"]])[0],
                          "prompt_tokens_details": {"cached_tokens": 0}}}

    async def completions(request: Request):
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        if state["failures_left"] > 0:
            state["failures_left"] -= 1
            return JSONResponse({"error": "overloaded, try again"}, status_code=503)
        body = await request.json()
        if body.get("model") != served_name:
            return JSONResponse({"error": f"model {body.get('model')!r} does not exist"}, status_code=404)
        try:
            return JSONResponse(await run_in_threadpool(complete, body))
        except (KeyError, ValueError) as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    async def health(request: Request):
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/v1/completions", completions, methods=["POST"]),
                             Route("/health", health)])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--served-name", default=None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--fail-first", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    from pathlib import Path

    app = make_app(args.model, args.served_name or Path(args.model).name, args.fail_first, args.api_key)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
