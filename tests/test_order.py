"""The run-compressed Order against a plain list of ids (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sos
from sos._order import Order, Run, decode_runs, split_id

PREFIXES = ["aa", "bb", "c0"]

ids_lists = st.lists(
    st.builds(lambda p, n: f"{p}-{n}", st.sampled_from(PREFIXES), st.integers(0, 12)),
    max_size=25,
)
# Lists built the way a handle builds them: runs of consecutive numbers.
runs = st.builds(
    Run,
    st.sampled_from(PREFIXES),
    st.integers(0, 50),
    st.integers(0, 50),
)
orders = st.lists(runs, max_size=6).map(Order)


def expand(runs: list[Run]) -> list[str]:
    """Ids of runs, computed independently of Order."""
    out = []
    for run in runs:
        step = 1 if run.last >= run.first else -1
        out += [f"{run.prefix}-{n}" for n in range(run.first, run.last + step, step)]
    return out


def assert_well_formed(order: Order) -> None:
    """No two neighbouring runs could be one: the manifest is as short as it can be."""
    for a, b in zip(order.runs, order.runs[1:], strict=False):
        assert Order([a, b]).runs == [a, b] and len(Order([a, b]).runs) == 2


SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(ids_lists)
def test_from_ids_is_the_same_sequence(ids: list[str]):
    order = Order.from_ids(ids)
    assert list(order) == ids
    assert order.ids() == ids
    assert len(order) == len(ids)
    assert [order.id_at(i) for i in range(len(ids))] == ids
    assert expand(order.runs) == ids
    assert_well_formed(order)


@SETTINGS
@given(st.lists(runs, max_size=6))
def test_runs_expand_to_their_ids(raw: list[Run]):
    order = Order(raw)
    assert list(order) == expand(raw)
    assert len(order.runs) <= len(raw)
    assert_well_formed(order)


@SETTINGS
@given(orders, st.integers(-3, 60), st.integers(-3, 60), ids_lists)
def test_splice_is_slice_assignment(order: Order, start: int, stop: int, new: list[str]):
    n = len(order)
    start = max(0, min(start, n))
    stop = max(start, min(stop, n))
    model = order.ids()
    model[start:stop] = new
    result = order.splice(start, stop, new)
    assert list(result) == model
    assert list(order.splice(start, stop, Order.from_ids(new))) == model
    assert_well_formed(result)


@SETTINGS
@given(orders)
def test_reversed(order: Order):
    assert list(order.reversed()) == order.ids()[::-1]
    assert len(order.reversed().runs) == len(order.runs)
    assert order.reversed().reversed() == order


@SETTINGS
@given(orders)
def test_encode_decode_round_trip(order: Order):
    data = order.encode()
    assert decode_runs(data, "order.txt") == order.runs
    # Reading counts an id named twice once, at its first place (a union merge's repeat).
    assert Order.decode(data, "order.txt").ids() == list(dict.fromkeys(order.ids()))
    assert data.count(b"\n") == len(order.runs) + 1
    assert data.isascii()


@SETTINGS
@given(orders, st.sampled_from(PREFIXES), st.integers(0, 55))
def test_contains(order: Order, prefix: str, number: int):
    item_id = f"{prefix}-{number}"
    assert order.contains(item_id) == (item_id in order.ids())


def test_appending_in_order_extends_one_run():
    order = Order()
    for n in range(1000):
        order = order.splice(len(order), len(order), [f"aa-{n}"])
    assert order.runs == [Run("aa", 0, 999)]
    assert order.encode().splitlines()[1] == b"aa 0-999"
    # a second writer's appends make one more line, however long the list
    for n in range(3):
        order = order.splice(len(order), len(order), [f"bb-{n}"])
    assert order.runs == [Run("aa", 0, 999), Run("bb", 0, 2)]


def test_decode_ignores_blank_and_comment_lines_and_surrounding_space():
    data = b"# header\n\n  aa 3-1  \n# merged by git\nbb 7\r\n"
    assert list(Order.decode(data, "o")) == ["aa-3", "aa-2", "aa-1", "bb-7"]


@pytest.mark.parametrize(
    "line",
    [b"aa", b"aa 1-", b"AA 1", b"aa 01", b"aa -1", b"aa 1 2", b"aa\t1", b"<<<<<<< HEAD", b"\xff"],
)
def test_decode_refuses_a_bad_line(line: bytes):
    with pytest.raises(sos.CorruptError) as info:
        Order.decode(b"# header\naa 0-2\n" + line + b"\n", "/s/order.txt")
    assert info.value.path == "/s/order.txt"
    assert isinstance(info.value, ValueError)


def test_split_id():
    assert split_id("0123456789abcdef-42") == ("0123456789abcdef", 42)
    for bad in ["nodash", "aa-", "aa-01", "AA-1", "aa-b"]:
        with pytest.raises(ValueError):
            split_id(bad)
