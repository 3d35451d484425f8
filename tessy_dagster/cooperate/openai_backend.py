"""The `openai` backend: a remote OpenAI-compatible completions server (in production vLLM serving a large
teacher with tensor parallelism on its own nodes).

Raw `/v1/completions` calls, one per prompt, all of a batch in flight at once under a concurrency cap (the
server batches them); a request that fails for a reason worth retrying (connection error, timeout, 408, 429,
5xx) is retried with exponential backoff, anything else fails at once with the server's message. The
model's tokenizer is read from a local folder: it renders the chat template and counts tokens, so prompts
and counts are the same as with the in-process backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..settings import GenerationSettings, SamplingSettings
from .generation import Generation, LocalTokenizer, per_prompt, vllm_finish_reason

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    pass


@dataclass
class Connection:
    session: object  # aiohttp.ClientSession
    limit: asyncio.Semaphore  # requests in flight to this server at most (generation.concurrency)


class OpenAIGenerator(LocalTokenizer):
    def __init__(self, url: str, served_name: str, tokenizer_dir: str | Path, *, needs_thinking: bool = True,
                 concurrency: int = 32, timeout_s: float = 120.0, max_retries: int = 4, backoff_s: float = 0.5,
                 api_key: str | None = None):
        super().__init__(tokenizer_dir, needs_thinking)
        self.url = url.rstrip("/") + "/v1/completions"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.served_name = served_name
        self.concurrency, self.timeout_s = concurrency, timeout_s
        self.max_retries, self.backoff_s = max_retries, backoff_s
        self.requests = 0  # sent, retries included (for the cost benchmark)
        # prompt tokens the server computed / found in its prefix cache; None until it reports cached tokens
        # (vLLM does with --enable-prompt-tokens-details)
        self.computed_tokens = self.reused_tokens = None

    @classmethod
    def from_settings(cls, model_dir, generation: GenerationSettings, *, role: str, needs_thinking: bool = True):
        if role not in generation.urls:
            raise ValueError(f"generation.urls has no server for {role!r} (backend 'openai'); set "
                             f'"urls": {{"{role}": "http://host:port"}}')
        api_key = None
        if role in generation.api_key_env:
            variable = generation.api_key_env[role]
            api_key = os.environ.get(variable)
            if not api_key:
                raise ValueError(f"generation.api_key_env names {variable} for the {role}'s server, and that "
                                 f"environment variable is not set (under the kubernetes launcher: map it to a "
                                 f"Secret in launcher.kubernetes.secret_env)")
        return cls(generation.urls[role], generation.served_names.get(role, Path(model_dir).name), model_dir,
                   needs_thinking=needs_thinking, concurrency=generation.concurrency, timeout_s=generation.timeout_s,
                   max_retries=generation.max_retries, backoff_s=generation.backoff_s, api_key=api_key)

    def generate(self, prompts: list[str], max_new_tokens: int | list[int], sampling: SamplingSettings,
                 stop_at_think_end: bool, cache_keys: list[str] | None = None) -> list[Generation]:
        # cache_keys are not needed here: the server's own prefix cache finds the shared prefixes.
        if not prompts:
            return []
        return asyncio.run(self._generate_all(prompts, max_new_tokens, sampling, stop_at_think_end))

    async def _generate_all(self, prompts, max_new_tokens, sampling, stop_at_think_end):
        async with self.connection() as connection:
            return await asyncio.gather(*(self.request(connection, p, n, sampling, stop_at_think_end)
                                          for p, n in zip(prompts, per_prompt(max_new_tokens, len(prompts)))))

    @contextlib.asynccontextmanager
    async def connection(self):
        """An HTTP session and the concurrency cap, for requests sent from one event loop (`request`)."""
        import aiohttp

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as session:
            yield Connection(session, asyncio.Semaphore(self.concurrency))

    async def request(self, connection: Connection, prompt: str, max_new_tokens: int, sampling: SamplingSettings,
                      stop_at_think_end: bool) -> Generation:
        """One completion, sent as soon as the connection's concurrency cap allows, retried as `generate`
        retries (the engine without a round barrier sends each sequence's requests this way)."""
        import aiohttp

        session, limit = connection.session, connection.limit
        body = {"model": self.served_name, "prompt": prompt, "max_tokens": max_new_tokens,
                "temperature": sampling.temperature, "top_p": sampling.top_p,
                "stop": list(self.stop_strings) if stop_at_think_end else [],
                # vLLM's extensions: top-k, and keep chat markers in the text as the in-process backend does
                "top_k": sampling.top_k if sampling.top_k else -1, "skip_special_tokens": False}
        for attempt in range(self.max_retries + 1):
            try:
                async with limit:
                    self.requests += 1
                    async with session.post(self.url, json=body, headers=self.headers) as response:
                        if response.status in RETRYABLE_STATUS:
                            raise _Retryable(f"HTTP {response.status}: {(await response.text())[:200]}")
                        if response.status >= 400:
                            raise RuntimeError(f"{self.url} refused the request: HTTP {response.status}: "
                                               f"{(await response.text())[:500]}")
                        data = await response.json()
                return self._parse(data, stop_at_think_end)
            except (aiohttp.ClientError, asyncio.TimeoutError, _Retryable) as err:
                if attempt == self.max_retries:
                    raise RuntimeError(f"{self.url}: no answer after {attempt + 1} attempts; last error: "
                                       f"{type(err).__name__}: {err}") from err
                await asyncio.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def _parse(self, data: dict, stop_at_think_end: bool) -> Generation:
        try:
            choice = data["choices"][0]
            text, finish = choice["text"], choice.get("finish_reason")
        except (KeyError, IndexError, TypeError) as err:
            raise RuntimeError(f"{self.url}: not a completions response ({err!r}): {str(data)[:300]}") from None
        reason = vllm_finish_reason(finish, choice.get("stop_reason"), self.stop_strings, stop_at_think_end)
        usage = data.get("usage") or {}
        cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        if cached is not None and usage.get("prompt_tokens") is not None:
            self.computed_tokens = (self.computed_tokens or 0) + usage["prompt_tokens"] - cached
            self.reused_tokens = (self.reused_tokens or 0) + cached
        n_tokens = usage.get("completion_tokens")
        if n_tokens is None:
            n_tokens = self.count_tokens([text])[0]
        return Generation(text=text, n_tokens=int(n_tokens), finish_reason=reason)
