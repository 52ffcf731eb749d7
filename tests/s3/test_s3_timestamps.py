"""The client's timestamp parser (less CPU per response than botocore's
dateutil-based one) gives exactly what botocore's would, and is the one
the store's client uses."""

from __future__ import annotations

import datetime

import botocore.utils
import pytest

import sos
from sos.storage.s3 import client as client_

pytestmark = pytest.mark.s3

SAMPLES = [
    "Sun, 06 Dec 2026 21:35:52 GMT",
    "Mon, 29 Feb 2027 00:00:00 GMT",  # no such day: both refuse it
    "2026-12-06T21:35:52.000Z",
    "2026-12-06T21:35:52Z",
    "2026-12-06T21:35:52.123456Z",
    "2026-12-06T21:35:52+02:00",
    "1700000000",
    "not a date",
    "",
]


@pytest.mark.parametrize("value", SAMPLES)
def test_the_fast_timestamp_parser_agrees_with_botocores(value: str) -> None:
    def parse(parser: object) -> object:
        try:
            return parser(value)  # type: ignore[operator]
        except (ValueError, TypeError) as exc:
            return type(exc)

    ours, theirs = parse(client_._timestamp), parse(botocore.utils.parse_timestamp)
    assert ours == theirs
    if isinstance(ours, datetime.datetime):
        assert ours.utcoffset() == theirs.utcoffset()  # type: ignore[union-attr]


def test_the_store_client_parses_with_it(s3_url: str) -> None:
    with sos.Dict(s3_url + "/ts") as db:
        db["k"] = 1
        storage = db._storage
        defaults = storage._client._endpoint._response_parser_factory._defaults
        assert defaults.get("timestamp_parser") is client_._timestamp
        age = storage.age(db._name("k"))  # Date minus a parsed Last-Modified
        assert age is not None and 0 <= age < 60
