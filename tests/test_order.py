"""The run-compressed Order against a plain list of ids (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sos
from sos.format.order import MAX_ITEMS, MAX_NUMBER, Order, Run, decode_runs, repeated, split_id

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


# -- arithmetic on runs: the answers of the expansion, without expanding --------------

raw_runs = st.lists(runs, max_size=8)


def first_places(runs_: list[Run]) -> list[str]:
    return list(dict.fromkeys(expand(runs_)))


@SETTINGS
@given(raw_runs)
def test_decode_keeps_each_id_at_its_first_place(raw: list[Run]):
    data = b"# h\n" + b"".join(run.encode().encode() + b"\n" for run in raw)
    order = Order.decode(data, "order.txt")
    assert list(order) == first_places(raw)
    assert len(order) == len(first_places(raw))


@SETTINGS
@given(raw_runs)
def test_repeated_names_every_second_mention(raw: list[Run]):
    seen: set[str] = set()
    again = []
    for item_id in expand(raw):
        if item_id in seen:
            again.append(item_id)
        seen.add(item_id)
    assert expand(repeated(raw)) == again


@SETTINGS
@given(
    orders,
    st.lists(st.builds(lambda p, n: f"{p}-{n}", st.sampled_from(PREFIXES), st.integers(0, 55))),
)
def test_missing_is_what_no_present_file_holds(order: Order, present: list[str]):
    assert expand(order.missing(present)) == [i for i in order if i not in set(present)]


@SETTINGS
@given(raw_runs, raw_runs)
def test_unique_and_without(raw: list[Run], removed: list[Run]):
    order = Order.unique(raw)
    assert list(order) == first_places(raw)
    gone = set(expand(removed))
    assert list(order.without(removed)) == [i for i in first_places(raw) if i not in gone]
    assert_well_formed(order.without(removed))


@SETTINGS
@given(raw_runs, st.sampled_from(PREFIXES), st.integers(0, 55))
def test_index_of_and_contains_on_runs_with_repeats(raw: list[Run], prefix: str, number: int):
    order = Order(raw)  # as check builds it: repeats kept
    ids = order.ids()
    item_id = f"{prefix}-{number}"
    assert order.index_of(item_id) == (ids.index(item_id) if item_id in ids else None)
    assert order.contains(item_id) == (item_id in ids)
    assert not order.contains("not an id") and order.index_of("x") is None


@SETTINGS
@given(orders, st.integers(-60, 60), st.integers(-60, 60), st.sampled_from([1, 2, -1, -3]))
def test_ids_at_a_slice(order: Order, start: int, stop: int, step: int):
    indexes = range(len(order))[start:stop:step]
    assert list(order.ids_at(indexes)) == order.ids()[start:stop:step]


def test_huge_runs_cost_memory_by_runs_not_ids():
    """A billion ids named a thousand times over (a union merge gone wild):
    every question is answered without making an id."""
    import tracemalloc

    data = b"# h\n" + b"aa 0-999999999\nbb 5\naa 999999999-0\n" * 1000
    tracemalloc.start()
    try:
        order = Order.decode(data, "order.txt")
        assert len(order) == 1_000_000_001
        assert order.id_at(999_999_999) == "aa-999999999" and order.id_at(10**9) == "bb-5"
        assert order.contains("aa-123456789") and not order.contains("aa-1000000000")
        assert order.index_of("bb-5") == 10**9
        assert order.missing(["aa-7"]) == [
            Run("aa", 0, 6),
            Run("aa", 8, 999999999),
            Run("bb", 5, 5),
        ]
        assert len(repeated(decode_runs(data, "order.txt"))) == 3 * 1000 - 2
        rest = order.without([Run("aa", 5, 10**9 - 5)])
        assert len(rest) == 10 and rest.runs[-1] == Run("bb", 5, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes"


@pytest.mark.parametrize(
    "body,words",
    [
        (b"0123456789abcdef 0-999999999999\n", "more than a filesystem holds"),
        (b"0123456789abcdef 0-999999999999\n" * 2000, "more than a filesystem holds"),
        (b"aa 0-2147483648\nbb 0-2147483648\n", "more than a filesystem holds"),
        (b"aa " + b"9" * 5000 + b"\n", "5000 digits"),
        (b"aa 1-" + b"9" * 5000 + b"\n", "5000 digits"),
        (b"aa 9223372036854775808\n", "2^63 - 1"),
    ],
    ids=["absurd", "absurd-repeated", "absurd-total", "5000-digits", "5000-digits-last", "int64"],
)
def test_absurd_manifests_are_corrupt_and_named(body: bytes, words: str):
    with pytest.raises(sos.CorruptError) as info:
        Order.decode(b"# h\n" + body, "/s/order.txt")
    assert info.value.path == "/s/order.txt" and "/s/order.txt" in str(info.value)
    assert words in str(info.value)


def test_the_largest_numbers_are_still_read():
    order = Order.decode(b"# h\naa %d\nbb 0-%d\n" % (MAX_NUMBER, MAX_ITEMS - 2), "o")
    assert order.id_at(0) == f"aa-{MAX_NUMBER}" and len(order) == MAX_ITEMS


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "is empty"),
        (b"aa 0-2\n", "not with the header line"),
        (b"\n# sos list order\naa 1\n", "not with the header line"),
        (b"\xef\xbb\xbf# sos list order\naa 1\n", "byte order mark (BOM)"),
    ],
    ids=["empty", "no-header", "blank-first", "bom"],
)
def test_a_manifest_must_start_with_its_header(data: bytes, words: str):
    with pytest.raises(sos.CorruptError) as info:
        Order.decode(data, "/s/order.txt")
    assert info.value.path == "/s/order.txt" and words in str(info.value)
    assert Order.decode(HEADER_ONLY, "o") == Order()


HEADER_ONLY = Order().encode()
