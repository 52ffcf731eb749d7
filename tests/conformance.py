"""Reusable checkers: the behaviour a dict or list has, asserted on any object.

Each checker is run on a plain ``dict``/``list`` too (tests/test_dict.py,
tests/test_list.py): that proves the checker itself is right, so a failure on a
store is the store's fault.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, MutableSequence
from typing import Any

import pytest

__all__ = ["check_bad_key_types", "check_mapping", "check_sequence"]


def check_mapping(m: MutableMapping[str, Any]) -> None:
    """Exercise every MutableMapping method on the empty mapping ``m``."""
    assert len(m) == 0
    assert list(m) == []
    assert m == {}
    assert "a" not in m
    assert m.get("a") is None
    assert m.get("a", 7) == 7
    with pytest.raises(KeyError):
        m["a"]
    with pytest.raises(KeyError):
        del m["a"]
    with pytest.raises(KeyError):
        m.popitem()

    m["a"] = 1
    m["b"] = [1, 2]
    m["c"] = {"x": None, "y": "é"}
    assert len(m) == 3
    assert m["a"] == 1
    assert m["b"] == [1, 2]
    assert m["c"] == {"x": None, "y": "é"}
    assert sorted(m) == ["a", "b", "c"]
    assert sorted(m.keys()) == ["a", "b", "c"]
    assert sorted(m.items()) == [("a", 1), ("b", [1, 2]), ("c", {"x": None, "y": "é"})]
    assert sorted(map(repr, m.values())) == sorted(map(repr, [1, [1, 2], {"x": None, "y": "é"}]))
    assert "b" in m.keys()  # noqa: SIM118 - the view's own __contains__
    assert ("a", 1) in m.items()
    assert ("a", 2) not in m.items()
    assert [1, 2] in m.values()
    assert m == {"a": 1, "b": [1, 2], "c": {"x": None, "y": "é"}}
    assert m != {"a": 1}
    assert m != {"a": 1, "b": [1, 2], "c": {}}
    # keys, values and items agree on one order
    assert [k for k, _ in m.items()] == list(m.keys()) == list(m)
    assert [v for _, v in m.items()] == list(m.values())

    m["a"] = "replaced"
    assert m["a"] == "replaced"
    assert len(m) == 3

    assert m.setdefault("a", "ignored") == "replaced"
    assert m.setdefault("d", [0]) == [0]
    assert m["d"] == [0]
    assert m.setdefault("e") is None
    assert "e" in m and m["e"] is None

    assert m.pop("e") is None
    assert m.pop("e", "dflt") == "dflt"
    with pytest.raises(KeyError):
        m.pop("e")

    m.update({"f": 1.5, "a": 0})
    m.update([("g", True)], h=False)
    m.update(i=-1)
    assert (m["f"], m["a"], m["g"], m["h"], m["i"]) == (1.5, 0, True, False, -1)

    before = dict(m)
    key, value = m.popitem()
    assert key not in m
    assert before[key] == value
    assert len(m) == len(before) - 1

    del m["b"]
    assert "b" not in m
    m.clear()
    assert len(m) == 0
    assert m == {}
    assert list(m.items()) == []

    # values are copies, as with shelve: changing what a read returned changes nothing
    m["l"] = [1]
    got = m["l"]
    got.append(2)
    if got is not m["l"]:  # a plain dict hands out the object itself
        assert m["l"] == [1]
    m.clear()


def check_bad_key_types(m: MutableMapping[str, Any]) -> None:
    """Non-str keys: reads behave as on a dict of str keys; nothing is stored."""
    m["5"] = "five"
    for bad in (5, 5.0, None, b"5", ("5",)):
        assert bad not in m
        with pytest.raises(KeyError):
            m[bad]  # type: ignore[index]
        assert m.get(bad) is None  # type: ignore[arg-type]
        assert m.get(bad, "d") == "d"  # type: ignore[arg-type]
        with pytest.raises(KeyError):
            del m[bad]  # type: ignore[arg-type]
        assert m.pop(bad, "d") == "d"  # type: ignore[arg-type]
    assert list(m) == ["5"]
    m.clear()


def _outcome(action: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", action()
    except Exception as exc:
        return "raised", type(exc)


def _same(s: Any, model: list[Any], action: Callable[[Any], Any]) -> None:
    """``action`` gives the same result (or exception type) on ``s`` as on a list."""
    got = _outcome(lambda: action(s))
    want = _outcome(lambda: action(model))
    assert got == want, f"{got} != {want}"
    assert list(s) == model


def check_sequence(s: MutableSequence[Any]) -> None:
    """Exercise every MutableSequence method on the empty sequence ``s``."""
    model: list[Any] = []
    assert len(s) == 0
    assert s == []
    assert list(s) == []
    with pytest.raises(IndexError):
        s[0]
    with pytest.raises(IndexError):
        s.pop()
    with pytest.raises(IndexError):
        del s[0]
    with pytest.raises(ValueError):
        s.remove(1)
    with pytest.raises(ValueError):
        s.index(1)

    for op in [
        lambda x: x.append("a"),
        lambda x: x.append({"k": [1]}),
        lambda x: x.extend([1, 2, 3]),
        lambda x: x.insert(0, "first"),
        lambda x: x.insert(-1, "before last"),
        lambda x: x.insert(100, "far end"),
        lambda x: x.insert(-100, "far start"),
    ]:
        _same(s, model, op)
    assert s == ["far start", "first", "a", {"k": [1]}, 1, 2, "before last", 3, "far end"]
    assert len(s) == 9

    reads = [
        lambda x: x[0],
        lambda x: x[-1],
        lambda x: x[-9],
        lambda x: x[9],
        lambda x: x[-10],
        lambda x: x[1:4],
        lambda x: x[::2],
        lambda x: x[::-3],
        lambda x: x[7:2:-2],
        lambda x: x[100:],
        lambda x: x[-100:2],
        lambda x: x["0"],
        lambda x: x[1.0],
        lambda x: x.index(2),
        lambda x: x.index(2, 5),
        lambda x: x.index(2, -4, -1),
        lambda x: x.index("a", 3),
        lambda x: x.count(1),
        lambda x: x.count("zz"),
        lambda x: 3 in x,
        lambda x: {"k": [1]} in x,
        lambda x: "zz" in x,
        lambda x: list(reversed(x)),
        lambda x: list(iter(x)),
        lambda x: len(x),
    ]
    for op in reads:
        _same(s, model, op)

    writes = [
        lambda x: x.__setitem__(0, "zero"),
        lambda x: x.__setitem__(-1, "last"),
        lambda x: x.__setitem__(9, "out"),
        lambda x: x.__setitem__(slice(1, 3), ["s1", "s2", "s3"]),
        lambda x: x.__setitem__(slice(0, 0), []),
        lambda x: x.__setitem__(slice(None, None, 2), list(range(len(x[::2])))),
        lambda x: x.__setitem__(slice(None, None, 2), [1, 2]),  # size mismatch
        lambda x: x.__setitem__(slice(None, None, -3), ["r"] * len(x[::-3])),
        lambda x: x.__setitem__(slice(2, 2), ["in1", "in2"]),
        lambda x: x.__delitem__(1),
        lambda x: x.__delitem__(-2),
        lambda x: x.__delitem__(50),
        lambda x: x.__delitem__(slice(None, None, 3)),
        lambda x: x.__delitem__(slice(-2, None)),
        lambda x: x.pop(),
        lambda x: x.pop(0),
        lambda x: x.pop(-2),
        lambda x: x.pop(40),
        lambda x: x.remove("in2"),
        lambda x: x.remove("never there"),
        lambda x: x.extend([]),
        lambda x: x.extend(x),
        lambda x: x.reverse(),
        lambda x: x.__iadd__(["plus", None]) and None,
        lambda x: x.extend(i * 1.5 for i in range(3)),
    ]
    for op in writes:
        _same(s, model, op)

    _same(s, model, lambda x: x.clear())
    for op in [
        lambda x: x.extend([3, 1, 2, 1, -5, 10**30]),
        lambda x: x.sort(),
        lambda x: x.sort(reverse=True),
        lambda x: x.sort(key=lambda v: v % 3),
        lambda x: x.sort(key=lambda v: v % 2, reverse=True),
        lambda x: x.remove(1),
    ]:
        _same(s, model, op)

    # A failed sort leaves a list "partially modified" (CPython docs), so only
    # the exception is compared; test_list checks that a store stays as it was.
    s.append("str")
    model.append("str")
    with pytest.raises(TypeError):
        model.sort()
    with pytest.raises(TypeError):
        s.sort()
    model[:] = list(s)

    assert s == model
    assert not (s != model)  # noqa: SIM202 - __ne__ itself
    assert s != [*model, 0]
    assert (s == "not a list") is False
    s.clear()
    assert len(s) == 0
    assert s == []
