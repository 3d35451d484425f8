"""Cutting chunks while decoding (hf): the boundary model follows each chunk token by token and a sequence
stops at its cut. It must write the traces the round-and-rollback engine writes."""

import pyarrow.parquet as pq
import pytest

from tessy_dagster.boundary.model import BoundaryPredictor
from tessy_dagster.cooperate.engine import CooperativeEngine, choose_cut
from tessy_dagster.cooperate.generation import load_generator
from tessy_dagster.settings import SamplingSettings


def test_choose_cut_waits_until_the_word_at_the_cut_has_ended():
    chunk = " adds 3 Hmm"
    assert choose_cut(chunk, [7], fresh_turn=False) == 7  # a switch at a word's start: its space goes along
    assert choose_cut(chunk, [7], fresh_turn=False, final=False) == 7  # decided: the word before has ended
    assert choose_cut(" add", [3], fresh_turn=False, final=False) is None  # inside a word still being written
    assert choose_cut(" adds 3", [3], fresh_turn=False, final=False) == 5  # ... completed once it ends
    assert choose_cut(" add", [3], fresh_turn=False) == 4  # the chunk ended there: completing takes it all
    assert choose_cut(chunk, [], fresh_turn=False, final=False) is None
    assert choose_cut(chunk, [], fresh_turn=False) == len(chunk)


def test_choose_cut_keeps_a_fresh_turns_first_word():
    # a role that has just taken over keeps its first word; the switch starts after it are judged as ever
    assert choose_cut(" Step 1 Hmm", [0, 8], fresh_turn=True) == 7
    assert choose_cut(" Step 1 Hmm", [0, 3], fresh_turn=True) == len(" Step 1 Hmm")  # inside the kept word
    assert choose_cut(" Ste", [0], fresh_turn=True, final=False) is None  # the first word has not ended yet
    assert choose_cut(" Step", [0], fresh_turn=True) == 5
    assert choose_cut("  ", [], fresh_turn=True) == 2 and choose_cut("  ", [], True, final=False) is None


@pytest.fixture(scope="module")
def predictor(micro_world):
    return BoundaryPredictor(micro_world["boundary"], context_tokens=40)


def test_a_follower_fed_piece_by_piece_predicts_what_one_pass_predicts(predictor):
    """The follower reads a growing chunk a few characters at a time, pieces that split tokens (the last
    token of a piece is read, then replaced when the text grows): it must end with the switch starts of one
    pass over the whole chunk, for each role, and the tokens it has read hidden or not must not matter."""
    contexts = ["Hmm, wait. Step 1 adds 3: (x + 3).\n", "", "Now then, Step 1 doubles it: (2 * x).\nHmm, "]
    chunks = ["Now then, Step 2 squares it: ((x + 3) ** 2).\nHmm, wait.",
              "Okay so the code is def f(x): return x",
              "let me see. Step 2 adds 1: ((2 * x) + 1).\nCode: return ((2 * x) + 1)"]
    for role in ("student", "teacher"):
        expected = predictor.switch_starts(contexts, chunks, [role] * len(chunks))
        follower = predictor.follow(role, contexts)
        for end in range(3, max(map(len, chunks)) + 3, 3):
            rows = [i for i, chunk in enumerate(chunks) if end - 3 < len(chunk)]
            follower.advance(rows, [chunks[i][:end] for i in rows])
        assert follower.starts == expected, role
        assert any(expected)  # the comparison covers real switches


def _tessy(micro_world, micro, prompts, **update):
    settings = micro.cooperate.model_copy(update={"sampling": SamplingSettings(temperature=0.0), **update})
    models = {role: load_generator(micro_world[role], settings.generation, role=role)
              for role in ("teacher", "student")}
    boundary = BoundaryPredictor(micro_world["boundary"], context_tokens=micro.boundary.context_tokens)
    engine = CooperativeEngine(models, boundary, settings, {}, progress=lambda m: None)
    return {r["prompt_id"]: r for r in engine.run("tessy", prompts)}


def test_cutting_while_decoding_writes_the_round_engines_traces(micro_world, micro):
    """Greedy decoding, the same models and prompts: cutting while decoding writes exactly the spans the
    round engine writes when its chunks are as long as a turn (k = turn_tokens), where the two differ only
    in when the cut is found. With short chunks (the reference k = 5 / 10) the round engine differs in two
    ways, both from its chunk seams, neither from the cut:
    - a chunk that ends right after a newline keeps it whole (no cut in it), so the newline stays with its
      writer, while a cut at the next word gives the whitespace before that word to the next writer, as
      cutting while decoding always does;
    - every k tokens the round engine re-tokenizes the text so far, so where a model wrote tokens its
      tokenizer would not produce (the micro student's "meeee" loop, one "e" at a time), the round engine
      continues from other ids than the model's own, and greedy decoding goes elsewhere.
    Measured with k = 5 / 10 on the demo's models: 256 of 256 traces the same text, 212 the same spans, the
    other 44 differ only in the first way (benchmarks/results/cut_agreement.json); on the micro models
    here, 2 of 8 the same text (the second way)."""
    rows = pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist()
    prompts = [(r["problem_id"], r["prompt"]) for r in rows]
    turn = micro.cooperate.turn_tokens
    rounds = _tessy(micro_world, micro, prompts, cut_while_decoding=False, student_chunk_tokens=turn,
                    teacher_chunk_tokens=turn)
    cut = _tessy(micro_world, micro, prompts, cut_while_decoding=True)
    assert sorted(rounds) == sorted(cut) == sorted(p for p, _ in prompts)
    for pid, row in rounds.items():
        assert cut[pid]["spans"] == row["spans"], pid
        assert cut[pid]["n_switches"] == row["n_switches"] and cut[pid]["ended"] == row["ended"]
    assert sum(row["n_switches"] > 0 for row in rounds.values()) >= len(prompts) // 2  # traces change hands
    # the round engine generated each turn to k and threw the rest away; the cut engine stopped at the cut
    waste = {mode: sum(r["rollback_tokens"] for r in rows.values()) for mode, rows in (("round", rounds), ("cut", cut))}
    switches = sum(row["n_switches"] for row in rounds.values())
    assert waste["cut"] < waste["round"] and waste["cut"] <= 3 * switches, (waste, switches)
