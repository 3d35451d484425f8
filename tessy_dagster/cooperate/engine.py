"""The cooperative engine (TESSY Algorithm 1), batched: many sequences in flight, one call per role a round.

Each round groups the live sequences by role and asks that role's model to continue each (one batched
call); the boundary model says where each chunk stops being the role's, the text up to that cut completed
to the next whitespace is kept, and the rest of the trace goes to the other role. On `hf` the boundary
model follows each chunk while it is decoded and the sequence stops at its cut (`cut_while_decoding`);
where a server decodes, each role writes at most k tokens, the boundary model is asked afterwards and what
ran past the cut is thrown away (on `openai` without a round barrier: cooperate/pipelined.py). The
models share text, not token ids, so their tokenizers and chat formats may differ: each model's prompt is
its own template left inside its thinking section (`thinking_prompt`), continued by the shared text, and
the answering model's prompt closes thinking and opens the answer its own way (`answer_prompt`). The
student starts and always writes the final answer. Finished slots are refilled from the queue.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..settings import CooperateSettings

OTHER = {"student": "teacher", "teacher": "student"}
NORMAL_END = "end_of_thinking"
# arm -> (who thinks, who answers): the paper's arm and baseline, its two ablations, and the student alone
# (its own traces: a baseline arm, and what `student_responses` samples for the drift metrics). The paper's
# other baselines are built from these plans (cooperate/baselines.py).
ARM_PLAN = {
    "tessy": ("cooperative", "student"),
    "teacher_only": ("teacher", "teacher"),
    "teacher_think": ("teacher", "student"),
    "teacher_answer": ("cooperative", "teacher"),
    "student_only": ("student", "student"),
}


@dataclass
class _Sequence:
    prompt_id: str
    prompt: str
    attempt: int = 1
    role: str = "student"
    text: str = ""
    spans: list = field(default_factory=list)  # [text, author] pairs, merged while the author stays
    switches: int = 0
    rollback_tokens: int = 0
    rounds: int = 0
    fresh_turn: bool = True  # the role has just taken over (or the trace just started)
    turn_tokens: int = 0  # tokens the role has kept in its current turn (its own tokenizer)
    ended: str | None = None

    @property
    def key(self) -> str:
        """Names this attempt to the backends that cache per sequence."""
        return f"{self.prompt_id}#{self.attempt}"


def complete_to_whitespace(chunk: str, cut: int) -> int:
    """Where to cut `chunk` near `cut` so that no word is split and the kept text ends at a word's end.

    A cut inside a word moves to the end of that word. The whitespace before the next word goes to the
    next writer: byte-level BPE attaches a space to the word after it, so a handoff that ends in a space
    would show the next model a token sequence it never saw in training."""
    cut = max(0, min(cut, len(chunk)))
    if 0 < cut < len(chunk) and not chunk[cut - 1].isspace() and not chunk[cut].isspace():
        m = _WHITESPACE.search(chunk, cut)
        cut = m.start() if m else len(chunk)
    if cut < len(chunk):
        cut = len(chunk[:cut].rstrip())
    return cut


_WHITESPACE = re.compile(r"\s")


def first_word_end(chunk: str) -> int:
    """The end of the chunk's first word (its leading whitespace and the word)."""
    lead = len(chunk) - len(chunk.lstrip())
    return complete_to_whitespace(chunk, lead + 1)


def choose_cut(chunk: str, starts: list[int], fresh_turn: bool, final: bool = True) -> int | None:
    """Where a role's chunk is cut: at its first switch start (`starts`: where the boundary model gives a
    token to the other role), completed to a word's end; the whole chunk when there is none (the role goes
    on). A role that has just taken over keeps at least its first word: the other role's span was cut
    right here, so the position is this role's (which also guarantees progress); the switch starts after
    that word are judged as in any chunk. (Keeping the word and then handing the turn back unasked split
    capability lines word by word: the teacher kept " Step", the student was handed " 2" by the same rule,
    and wrote a wrong one.)

    `final=False` is asked while the chunk is still being decoded: the cut, or None while more text could
    still change it (no switch yet, or the word it completes to has not ended)."""
    if fresh_turn and not chunk.strip():
        return len(chunk) if final else None
    floor = 0
    for start in starts:
        if start < floor:
            continue
        if not final and not _word_ended(chunk, start):
            return None
        cut = complete_to_whitespace(chunk, start)
        if fresh_turn and not chunk[:cut].strip():  # the first word: kept, and judged again after it
            if not final and not _word_ended(chunk, len(chunk) - len(chunk.lstrip()) + 1):
                return None
            floor = first_word_end(chunk)
            continue
        return cut
    return len(chunk) if final else None


def _word_ended(chunk: str, cut: int) -> bool:
    """Whether completing a cut at `cut` to a word's end can no longer change as the chunk grows."""
    return (cut == 0 or chunk[cut - 1].isspace() or (cut < len(chunk) and chunk[cut].isspace())
            or _WHITESPACE.search(chunk, cut) is not None)


def has_repetition_loop(text: str, min_words: int, max_words: int, count: int) -> bool:
    """True when the text ends in a fragment of min..max words repeated `count` times in a row."""
    words = text.split()
    for n in range(min_words, max_words + 1):
        if n * count > len(words):
            break
        tail = words[-n:]
        if all(words[-n * (i + 1):len(words) - n * i] == tail for i in range(1, count)):
            return True
    return False


def _check_stops(seq: _Sequence, student_tokens: int, settings: CooperateSettings) -> None:
    if seq.ended:
        return
    if student_tokens > settings.max_student_tokens:
        seq.ended = "length_budget"
    elif has_repetition_loop(seq.text, settings.repetition_min_words, settings.repetition_max_words,
                             settings.repetition_count):
        seq.ended = "repetition"
    elif seq.rounds >= settings.max_rounds:
        seq.ended = "max_rounds"


def apply_chunk(q: _Sequence, role: str, out, cut: int) -> str:
    """Add `role`'s chunk (a Generation), cut at `cut`, to the sequence: the kept text joins its spans; past
    the cut the turn goes to the other role. Returns the text thrown away (rolled back)."""
    q.rounds += 1
    chunk = out.text
    if not chunk.strip() and out.finish_reason == "length":
        q.ended = "empty_reply"
        return ""
    kept = chunk[:cut]
    if kept:
        if q.spans and q.spans[-1][1] == role:
            q.spans[-1][0] += kept
        else:
            q.spans.append([kept, role])
        q.text += kept
    q.fresh_turn = cut < len(chunk)
    if cut < len(chunk):
        q.role = OTHER[role]
        q.switches += 1
    elif out.finish_reason in ("think_end", "stop"):
        q.ended = NORMAL_END
    return chunk[cut:]


class ChunkLengths:
    """How many tokens a role's next chunk asks for, on backends that decode on a server (where the cut
    comes after the chunk, and what runs past it is thrown away).

    `fixed`: k of the settings. `learned`: from the lengths of the role's turns finished so far in this
    run: a sequence whose turn has kept w tokens asks for the `quantile` of the remaining length of the
    turns longer than w. A turn is a role's run between two cuts; in the toy world the student's are a
    marker of 2 to 4 tokens and the teacher's a step of 10 to 20, so one k per role is either too long for
    one or too short for the other. Until `warmup` turns of a role have ended, k of the settings."""

    warmup = 32

    def __init__(self, settings: CooperateSettings):
        self.mode, self.quantile = settings.chunk_lengths, settings.chunk_quantile
        self.k = {"student": settings.student_chunk_tokens, "teacher": settings.teacher_chunk_tokens}
        self.turns: dict[str, list[int]] = {"student": [], "teacher": []}

    def record(self, role: str, turn_tokens: int) -> None:
        self.turns[role].append(turn_tokens)

    def ask(self, role: str, written: int) -> int:
        longer = sorted(n - written for n in self.turns[role] if n > written)
        if self.mode == "fixed" or len(self.turns[role]) < self.warmup or not longer:
            return self.k[role]
        return max(1, longer[min(len(longer) - 1, int(self.quantile * len(longer)))])


class CooperativeEngine:
    """Runs an arm over prompts. `models` maps role -> generator (HFGenerator interface); `boundary` has
    `.switch_starts(contexts, chunks, roles)` and, to cut while decoding, `.follow(role, contexts)`;
    `provenance` is copied into every row."""

    def __init__(self, models: dict, boundary, settings: CooperateSettings, provenance: dict,
                 progress: Callable[[str], None] = print):
        self.models, self.boundary, self.settings = models, boundary, settings
        self.provenance, self.progress = provenance, progress
        self.chunks = ChunkLengths(settings)
        # Only where the backend decodes in this process can the boundary model stop a sequence mid-decode.
        self.cut_while_decoding = settings.cut_while_decoding and boundary is not None

    def run(self, arm: str, prompts: list[tuple[str, str]]) -> list[dict]:
        """One row per prompt: the arm's thinking (cooperative or the teacher's alone), then its answer."""
        if arm not in ARM_PLAN:
            raise ValueError(f"unknown arm {arm!r}; choose one of {sorted(ARM_PLAN)}")
        thinking, answer_role = ARM_PLAN[arm]
        if thinking == "cooperative":
            return self.run_tessy(prompts, arm=arm, answer_role=answer_role)
        return self.run_single(prompts, arm=arm, thinker=thinking, answer_role=answer_role)

    # --- cooperative thinking (tessy, teacher_answer) ----------------------------------------------
    def run_tessy(self, prompts: list[tuple[str, str]], arm: str = "tessy", answer_role: str = "student") -> list[dict]:
        s = self.settings
        if s.pipelined_requests and all(hasattr(m, "request") for m in self.models.values()):
            from .pipelined import run_tessy_pipelined  # served models: no round barrier

            return run_tessy_pipelined(self, prompts, arm, answer_role)
        chat = {role: {pid: self.models[role].thinking_prompt(text) for pid, text in prompts}
                for role in ("student", "teacher")}
        queue = deque(_Sequence(pid, text) for pid, text in prompts)
        active: list[_Sequence] = []
        rows: list[dict] = []
        thinking_done: list[_Sequence] = []
        rounds = 0
        while queue or active:
            while queue and len(active) < s.batch_size:
                active.append(queue.popleft())
            for role in ("student", "teacher"):
                group = [q for q in active if q.role == role and not q.ended]
                if group:
                    self._step(role, group, chat[role])
            still = []
            self._release_ended(active, answer_role)
            for q in active:
                if q.ended == NORMAL_END:
                    thinking_done.append(q)
                elif q.ended:
                    if q.attempt <= s.max_retries:  # a failed sample starts again from scratch
                        queue.append(_Sequence(q.prompt_id, q.prompt, attempt=q.attempt + 1))
                    else:
                        rows.append(self._row(q, arm, answer="", answer_reason="none"))
                else:
                    still.append(q)
            active = still
            rounds += 1
            if rounds % 10 == 0:
                self.progress(f"{arm} round {rounds}: {len(active)} in flight, {len(queue)} queued, "
                              f"{len(thinking_done) + len(rows)}/{len(prompts)} done")
        rows.extend(self._answers(thinking_done, arm, answer_role))
        return rows

    def _step(self, role: str, group: list[_Sequence], chat: dict) -> None:
        model = self.models[role]
        prompts, keys = [chat[q.prompt_id] + q.text for q in group], [q.key for q in group]
        if self.cut_while_decoding and getattr(model, "decodes_with_until", False):
            # The boundary model follows each chunk as it is decoded, and a sequence stops at its cut: no
            # tokens past the cut but the rest of its word and the next token (where the word ends).
            follower = self.boundary.follow(role, [q.text for q in group])

            def until(rows: list[int], texts: list[str]) -> list[bool]:
                return [choose_cut(text, starts, group[row].fresh_turn, final=False) is not None
                        for row, text, starts in zip(rows, texts, follower.advance(rows, texts))]

            outs = model.generate(prompts, self.settings.turn_tokens, self.settings.sampling,
                                  stop_at_think_end=True, cache_keys=keys, until=until)
            starts = [[s for s in follower.starts[i] if s < len(out.text)] for i, out in enumerate(outs)]
        else:  # generate k tokens, then ask where the chunk stopped being the role's and roll back the rest
            outs = model.generate(prompts, [self.chunks.ask(role, q.turn_tokens) for q in group],
                                  self.settings.sampling, stop_at_think_end=True, cache_keys=keys)
            starts = self.boundary.switch_starts([q.text for q in group], [o.text for o in outs], [role] * len(group))
        cuts = [choose_cut(out.text, s, q.fresh_turn) for q, out, s in zip(group, outs, starts)]
        rolled_back = [apply_chunk(q, role, out, cut) for q, out, cut in zip(group, outs, cuts)]
        for q, out, n in zip(group, outs, model.count_tokens(rolled_back)):  # one tokenizer call
            self.count_turn(q, role, out, n)
        student_counts = self.models["student"].count_tokens([q.text for q in group])
        for q, n in zip(group, student_counts):
            _check_stops(q, n, self.settings)

    def count_turn(self, q: _Sequence, role: str, out, rolled_back_tokens: int) -> None:
        """After `apply_chunk`: the tokens thrown away, and the turn's kept tokens (a finished turn's length
        goes to the learned chunk lengths)."""
        q.rollback_tokens += rolled_back_tokens
        q.turn_tokens += max(0, out.n_tokens - rolled_back_tokens)
        if q.role != role:  # the chunk was cut: the turn ended
            self.chunks.record(role, q.turn_tokens)
            q.turn_tokens = 0

    # --- one model thinking alone (teacher_only, teacher_think; the student's own traces) ------------
    def run_single(self, prompts: list[tuple[str, str]], arm: str = "teacher_only", thinker: str = "teacher",
                   answer_role: str = "teacher") -> list[dict]:
        """One model (`thinker`) writes the whole thinking trace; `answer_role` the answer. The baseline
        teacher_only is the teacher thinking and answering."""
        s, model = self.settings, self.models[thinker]
        pending = [_Sequence(pid, text, role=thinker) for pid, text in prompts]
        done, rows = [], []
        while pending:
            # Named, so that a teacher that also answers continues from its cache of the thinking.
            outs = model.generate([model.thinking_prompt(q.prompt) for q in pending], s.max_student_tokens,
                                  s.sampling, stop_at_think_end=True, cache_keys=[q.key for q in pending])
            counts = self.models["student"].count_tokens([o.text for o in outs])
            retry = []
            for q, out, n in zip(pending, outs, counts):
                q.text, q.spans, q.rounds = out.text, [[out.text, thinker]], 1
                if not out.text.strip():
                    q.ended = "empty_reply"
                elif out.finish_reason == "length":
                    q.ended = "length_budget"
                else:
                    _check_stops(q, n, s)
                    q.ended = q.ended or NORMAL_END
                if q.ended == NORMAL_END:
                    done.append(q)
                elif q.attempt <= s.max_retries:
                    retry.append(_Sequence(q.prompt_id, q.prompt, attempt=q.attempt + 1, role=thinker))
                else:
                    rows.append(self._row(q, arm, answer="", answer_reason="none"))
            self._release_ended(pending, answer_role)
            pending = retry
            self.progress(f"{arm}: {len(done) + len(rows)}/{len(prompts)} done, {len(pending)} to retry")
        rows.extend(self._answers(done, arm, answer_role))
        return rows

    # --- answers and rows ------------------------------------------------------------------------
    def _answers(self, seqs: list[_Sequence], arm: str, answer_role: str = "student") -> list[dict]:
        """The final answer, written by `answer_role` after the thinking, closed and the answer opened in the
        model's own format."""
        model = self.models[answer_role]
        prompts = [model.answer_prompt(q.prompt, q.text.strip()) for q in seqs]
        outs = model.generate(prompts, self.settings.max_answer_tokens, self.settings.sampling,
                              stop_at_think_end=False, cache_keys=[q.key for q in seqs])
        self._release(seqs)
        return [self._row(q, arm, answer=o.text.strip(), answer_reason=o.finish_reason, answer_role=answer_role)
                for q, o in zip(seqs, outs)]

    def _release(self, seqs: list[_Sequence], but: str | None = None) -> None:
        """Forget `seqs` in every model's cache, except the model of role `but`."""
        for role, model in self.models.items():
            if role != but:
                model.release([q.key for q in seqs])

    def _release_ended(self, seqs: list[_Sequence], answer_role: str) -> None:
        """The cache holds the sequences in flight. A failed one goes from every model; a finished thinking
        stays in the answering model's cache, which its answer continues (`_answers` releases it)."""
        self._release([q for q in seqs if q.ended and q.ended != NORMAL_END])
        self._release([q for q in seqs if q.ended == NORMAL_END], but=answer_role)

    def _row(self, q: _Sequence, arm: str, *, answer: str, answer_reason: str, answer_role: str = "student") -> dict:
        thinking = q.text.strip()
        lead = len(q.text) - len(q.text.lstrip())
        spans, offset = [], -lead
        for text, author in q.spans:
            start, end = max(0, offset), min(len(thinking), offset + len(text))
            offset += len(text)
            if end > start:
                spans.append({"text": thinking[start:end], "author": author, "start": start, "end": end})
        by_author = {r: [sp["text"] for sp in spans if sp["author"] == r] for r in ("teacher", "student")}
        student_counts = {r: sum(self.models["student"].count_tokens(t)) for r, t in by_author.items()}
        own_counts = {r: sum(self.models[r].count_tokens(t)) for r, t in by_author.items()}
        return {
            "prompt_id": q.prompt_id, "arm": arm, "prompt": q.prompt, "thinking": thinking, "answer": answer,
            "spans": spans,
            "n_tokens_student": student_counts["student"], "n_tokens_teacher": student_counts["teacher"],
            "n_tokens_total": student_counts["student"] + student_counts["teacher"],
            "n_own_tokens_student": own_counts["student"], "n_own_tokens_teacher": own_counts["teacher"],
            "n_switches": q.switches, "rollback_tokens": q.rollback_tokens, "rounds": q.rounds,
            "ended": q.ended or "unfinished", "answer_finish_reason": answer_reason,
            "answer_author": answer_role if answer_reason != "none" else "none",
            "attempts": q.attempt, **self.provenance,
        }
