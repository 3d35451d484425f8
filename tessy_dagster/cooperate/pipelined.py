"""Tessy's thinking on served models without a round barrier (the `openai` backend).

The round engine sends one batch of requests per role per round, so every sequence waits for the slowest
request of its round, and the two servers take turns: one idles while the other works. Here each sequence
is its own task: as soon as its chunk is cut, it sends its next request to whichever model writes next,
so both servers always have work, up to `generation.concurrency` requests each. The boundary model runs
in this process; requests to it are gathered while it is busy and answered as one batch (in a worker
thread, so the event loop keeps sending and receiving meanwhile). The rules are the round engine's own:
`choose_cut`, `apply_chunk`, the stops, the retries, the rows.
"""

from __future__ import annotations

import asyncio

from .engine import NORMAL_END, _check_stops, _Sequence, apply_chunk, choose_cut


class _BoundaryBatches:
    """`switch_starts` for one chunk at a time, run in batches: whatever was asked while the last batch
    ran forms the next."""

    def __init__(self, boundary):
        self.boundary, self.waiting, self.running = boundary, [], None

    async def switch_starts(self, context: str, chunk: str, role: str) -> list[int]:
        answer = asyncio.get_running_loop().create_future()
        self.waiting.append((context, chunk, role, answer))
        if self.running is None:
            self.running = asyncio.create_task(self._drain())
        return await answer

    async def _drain(self) -> None:
        try:
            while self.waiting:
                batch, self.waiting = self.waiting, []
                contexts, chunks, roles, answers = zip(*batch)
                try:
                    starts = await asyncio.to_thread(self.boundary.switch_starts, list(contexts), list(chunks),
                                                     list(roles))
                except Exception as err:  # every waiting sequence fails with the boundary model's error
                    for answer in answers:
                        answer.set_exception(err)
                    continue
                for answer, s in zip(answers, starts):
                    answer.set_result(s)
        finally:
            self.running = None


def run_tessy_pipelined(engine, prompts: list[tuple[str, str]], arm: str, answer_role: str) -> list[dict]:
    return asyncio.run(_run(engine, prompts, arm, answer_role))


async def _run(engine, prompts, arm, answer_role) -> list[dict]:
    settings, models = engine.settings, engine.models
    boundary = _BoundaryBatches(engine.boundary)
    in_flight = asyncio.Semaphore(settings.batch_size)
    done = [0]

    async with models["teacher"].connection() as teacher, models["student"].connection() as student:
        connections = {"teacher": teacher, "student": student}

        async def trace(prompt_id: str, prompt: str) -> dict:
            async with in_flight:
                row = await _one_trace(engine, boundary, connections, prompt_id, prompt, arm, answer_role)
            done[0] += 1
            if done[0] % 50 == 0 or done[0] == len(prompts):
                engine.progress(f"{arm}: {done[0]}/{len(prompts)} done")
            return row

        return await asyncio.gather(*(trace(pid, text) for pid, text in prompts))


async def _one_trace(engine, boundary, connections, prompt_id, prompt, arm, answer_role) -> dict:
    settings, models = engine.settings, engine.models
    chat = {role: models[role].thinking_prompt(prompt) for role in ("student", "teacher")}
    for attempt in range(1, settings.max_retries + 2):  # a failed sample starts again from scratch
        q = _Sequence(prompt_id, prompt, attempt=attempt)
        while not q.ended:
            role, model = q.role, models[q.role]
            out = await model.request(connections[role], chat[role] + q.text, engine.chunks.ask(role, q.turn_tokens),
                                      settings.sampling, stop_at_think_end=True)
            starts = await boundary.switch_starts(q.text, out.text, role)
            rolled_back = apply_chunk(q, role, out, choose_cut(out.text, starts, q.fresh_turn))
            engine.count_turn(q, role, out, model.count_tokens([rolled_back])[0] if rolled_back else 0)
            _check_stops(q, models["student"].count_tokens([q.text])[0], settings)
        if q.ended == NORMAL_END:
            model = models[answer_role]
            answer = await model.request(connections[answer_role], model.answer_prompt(prompt, q.text.strip()),
                                         settings.max_answer_tokens, settings.sampling, stop_at_think_end=False)
            return engine._row(q, arm, answer=answer.text.strip(), answer_reason=answer.finish_reason,
                               answer_role=answer_role)
    return engine._row(q, arm, answer="", answer_reason="none")
