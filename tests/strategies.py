"""Hypothesis strategies for sos tests: keys (awkward ones included) and JSON values.

Values are what JSON holds faithfully, so a round trip through a store must
give back an equal value: no tuples (they come back as lists), no NaN.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = ["AWKWARD_KEYS", "json_values", "keys", "small_keys"]

# Keys that break naive designs: names of our own files, path syntax, case
# folding, Unicode normalisation, control characters, the empty string.
AWKWARD_KEYS = [
    "",
    "\x00",
    "\n",
    "a\nb",
    "/",
    "a/b",
    "..",
    ".",
    "../../etc/passwd",
    "sos.json",
    "order.txt",
    ".sos-tmp-0123456789abcdef",
    ".gitignore",
    "A",
    "a",
    "CON",
    "\u00e9",  # é, one code point
    "e\u0301",  # é, e + combining acute: a different key
    "\U0001f600",
    " ",
    "key with spaces ",
    "x" * 300,
]

# Text UTF-8 can encode: everything but lone surrogates.
_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=20)

keys = st.one_of(st.sampled_from(AWKWARD_KEYS), _text)
# A few distinct keys so that state machines hit the same key again.
small_keys = st.one_of(st.sampled_from(AWKWARD_KEYS[:12]), st.sampled_from(["k0", "k1", "k2"]))

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False, allow_infinity=False),
    _text,
)


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(_text, children, max_size=4),
    )


json_values = st.recursive(_scalars, _containers, max_leaves=12)
