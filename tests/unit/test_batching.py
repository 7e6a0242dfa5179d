"""Property tests of the pure micro-batching policy in :mod:`workers.batching`."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infq.bus.messages import chunked
from infq.errors import PermanentFailure
from workers.batching import params_key, plan_batches, run_bisecting

# (id, group, length): ids are unique so "appears exactly once" is checkable.
Item = tuple[int, str, int]

item_lists = st.lists(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(min_value=0, max_value=50)),
    max_size=60,
).map(lambda pairs: [(i, g, n) for i, (g, n) in enumerate(pairs)])


def _plan(items: list[Item], max_batch_size: int) -> list[list[Item]]:
    return plan_batches(
        items, max_batch_size=max_batch_size, group_of=lambda i: i[1], length_of=lambda i: i[2]
    )


@given(st.lists(st.integers(), max_size=50), st.integers(min_value=1, max_value=12))
def test_chunked_cuts_consecutive_slices_of_at_most_size(items: list[int], size: int) -> None:
    chunks = [list(c) for c in chunked(items, size)]
    assert [x for c in chunks for x in c] == items
    assert all(len(c) == size for c in chunks[:-1])
    assert all(1 <= len(c) <= size for c in chunks)
    assert len(chunks) == math.ceil(len(items) / size)


def test_chunked_refuses_a_size_below_one() -> None:
    with pytest.raises(ValueError, match="size"):
        list(chunked([1, 2], 0))


@given(item_lists, st.integers(min_value=1, max_value=8))
def test_plan_batches_places_every_item_exactly_once(items: list[Item], size: int) -> None:
    batches = _plan(items, size)
    assert Counter(i for b in batches for i in b) == Counter(items)


@given(item_lists, st.integers(min_value=1, max_value=8))
def test_plan_batches_respects_size_and_groups(items: list[Item], size: int) -> None:
    for batch in _plan(items, size):
        assert 1 <= len(batch) <= size
        assert len({group for _, group, _ in batch}) == 1


@given(item_lists, st.integers(min_value=1, max_value=8))
def test_plan_batches_sorts_each_group_by_length(items: list[Item], size: int) -> None:
    batches = _plan(items, size)
    for group in {g for _, g, _ in items}:
        lengths = [n for b in batches if b[0][1] == group for _, _, n in b]
        assert lengths == sorted(lengths)


@given(item_lists, st.integers(min_value=1, max_value=8))
def test_plan_batches_uses_the_fewest_batches_per_group(items: list[Item], size: int) -> None:
    batches = _plan(items, size)
    per_group = Counter(g for _, g, _ in items)
    batch_count = Counter(b[0][1] for b in batches)
    assert batch_count == {g: math.ceil(n / size) for g, n in per_group.items()}


def test_plan_batches_refuses_a_max_batch_size_below_one() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        _plan([(0, "a", 1)], 0)


@given(
    st.integers(min_value=1, max_value=40).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(min_value=0, max_value=n - 1)))
    )
)
def test_run_bisecting_isolates_exactly_the_poisoned_items(case: tuple[int, set[int]]) -> None:
    n, poisoned = case
    items = list(range(n))
    calls: list[Sequence[int]] = []

    def run(batch: Sequence[int]) -> list[int]:
        calls.append(batch)
        if poisoned.intersection(batch):
            raise ValueError("poisoned input")
        return [i * 10 for i in batch]

    outcomes = run_bisecting(items, run)

    assert [o.item for o in outcomes] == items
    for o in outcomes:
        if o.item in poisoned:
            assert o.result is None
            assert o.error is not None
            assert o.error.code == "model_error"
            assert "ValueError: poisoned input" in o.error.message
        else:
            assert o.error is None
            assert o.result == o.item * 10
    # Cost bound from the docstring: about 2·log2(n) extra calls per bad item.
    assert len(calls) <= 1 + 2 * len(poisoned) * math.ceil(math.log2(n))


def test_run_bisecting_on_no_items_never_calls_the_model() -> None:
    def run(batch: Sequence[int]) -> list[int]:
        raise AssertionError("must not be called")

    assert run_bisecting([], run) == []


@pytest.mark.parametrize("delta", [-1, 1])
def test_run_bisecting_fails_items_when_the_result_count_is_wrong(delta: int) -> None:
    def run(batch: Sequence[int]) -> list[int]:
        return [0] * (len(batch) + delta)

    outcomes = run_bisecting([1, 2, 3], run)

    assert all(o.result is None and o.error is not None for o in outcomes)
    assert {o.error.code for o in outcomes if o.error} == {"model_error"}
    assert all("results for 1 inputs" in o.error.message for o in outcomes if o.error)


def test_run_bisecting_recovers_when_only_large_batches_miscount() -> None:
    def run(batch: Sequence[int]) -> list[int]:
        results = [i + 1 for i in batch]
        return results[:-1] if len(batch) > 2 else results

    outcomes = run_bisecting([10, 20, 30, 40, 50], run)

    assert [(o.item, o.result, o.error) for o in outcomes] == [
        (i, i + 1, None) for i in (10, 20, 30, 40, 50)
    ]


def test_run_bisecting_keeps_the_code_of_a_permanent_failure() -> None:
    def run(batch: Sequence[str]) -> list[str]:
        if "bad" in batch:
            raise PermanentFailure("input_rejected", "the model refuses 'bad'")
        return [s.upper() for s in batch]

    outcomes = run_bisecting(["ok", "bad", "fine"], run)

    by_item = {o.item: o for o in outcomes}
    assert by_item["ok"].result == "OK"
    assert by_item["fine"].result == "FINE"
    error = by_item["bad"].error
    assert error is not None
    assert (error.code, error.message) == ("input_rejected", "the model refuses 'bad'")


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.booleans() | st.text(), max_size=8))
def test_params_key_ignores_insertion_order(params: dict[str, object]) -> None:
    reversed_params = dict(reversed(list(params.items())))
    assert params_key(reversed_params) == params_key(params)


def test_params_key_sorts_nested_dicts_and_tells_values_apart() -> None:
    nested = {"b": {"y": 1, "x": 2}, "a": 0}
    assert params_key(nested) == params_key({"a": 0, "b": {"x": 2, "y": 1}})
    assert params_key({"upper": True}) != params_key({"upper": False})
    assert params_key({"upper": True}) != params_key({"upper": 1})
    assert params_key({}) != params_key({"upper": False})
