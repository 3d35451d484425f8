"""The hf backend's per-sequence KV cache: the same greedy text as recomputing everything, across handoffs."""

import pyarrow.parquet as pq
import pytest

from tessy_dagster.cooperate.hf_backend import HFGenerator, _cheapest_window, common_prefix
from tessy_dagster.settings import SamplingSettings

GREEDY = SamplingSettings(temperature=0.0)


def test_common_prefix_and_window_choice():
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    # many short tails and one fresh prompt: the fresh row fills its cache apart
    assert _cheapest_window([1, 2, 1, 3, 40]) == 3
    # all about as long: one window for all
    assert _cheapest_window([30, 31, 32]) == 32


@pytest.fixture(scope="module")
def prompts(micro_world):
    rows = pq.read_table(micro_world["prompts"] / "prompts.parquet").to_pylist()
    return [r["prompt"] for r in rows[:6]]


@pytest.mark.parametrize("max_cache_parts", [16, 2])
def test_cached_rounds_match_recomputing(micro_world, prompts, max_cache_parts):
    """Rounds of growing text as the engine sends them: own text cut mid-word, another writer's words
    appended, a sequence joining late. Greedy output with the cache equals output without it, also when a
    sequence's cached parts are joined every other round."""
    cached, plain = HFGenerator(micro_world["teacher"], batch_size=4), HFGenerator(micro_world["teacher"], batch_size=4)
    cached.max_cache_parts = max_cache_parts
    texts = [cached.chat_prompt(p) for p in prompts]
    keys = [f"p{i}" for i in range(len(prompts))]
    live = 3  # the rest join in the third round
    for round_ in range(5):
        if round_ == 2:
            live = len(prompts)
        a = cached.generate(texts[:live], 4, GREEDY, stop_at_think_end=True, cache_keys=keys[:live])
        b = plain.generate(texts[:live], 4, GREEDY, stop_at_think_end=True)
        assert a == b, f"round {round_}"
        assert all(len(entry.parts) <= max_cache_parts for entry in cached._cache.values())
        for i, out in enumerate(a):
            cut = len(out.text) // 2 if i % 2 else len(out.text)  # half the rows lose part of their chunk
            texts[i] += out.text[:cut] + (" Wait, let me check." if i % 3 == 0 else "")
    assert cached.reused_tokens > cached.computed_tokens  # the cache did the work
    assert plain.reused_tokens == 0
    cached.release(keys)
    assert not cached._cache


def test_sampling_with_the_cache_stays_in_bounds(micro_world, prompts, micro):
    gen = HFGenerator(micro_world["student"], batch_size=8)
    texts = [gen.chat_prompt(p) for p in prompts]
    for _ in range(3):
        outs = gen.generate(texts, 5, micro.cooperate.sampling, stop_at_think_end=True,
                            cache_keys=[str(i) for i in range(len(texts))])
        for i, o in enumerate(outs):
            assert 0 <= o.n_tokens <= 5 and (o.n_tokens == 5 or o.finish_reason != "length")
            texts[i] += o.text
    with pytest.raises(ValueError, match="2 cache keys for 6 prompts"):
        gen.generate(texts, 2, GREEDY, stop_at_think_end=True, cache_keys=["a", "b"])
