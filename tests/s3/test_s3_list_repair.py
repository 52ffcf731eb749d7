"""A List on S3 whose manifest was emptied or damaged: ``sos check --repair``
rebuilds it from the item objects, writers ordered by the objects'
Last-Modified (whole seconds, so writers start more than a second apart),
through the Python API and the command line; nothing goes to lost+found."""

from __future__ import annotations

import json

import pytest
from cli_helpers import sos as sos_cli
from test_list_repair import (
    DAMAGES,
    assert_rebuilt,
    damage,
    lost_and_found,
    manifest,
    plant_lost_items,
    three_writers,
)

import sos

pytestmark = pytest.mark.s3  # a real server: .ci/s3.sh installs it

SECOND = 1.1  # Last-Modified has whole seconds


@pytest.mark.parametrize("kind", ["empty", "prefix-then-garbage"])
@pytest.mark.long
def test_a_damaged_manifest_is_rebuilt_on_s3(s3_url: str, kind: str) -> None:
    model = three_writers(s3_url, SECOND)
    damaged = DAMAGES[kind](manifest(s3_url))
    damage(s3_url, damaged)
    found = sos.check(s3_url, repair=True)
    assert_rebuilt(s3_url, model, damaged, found)


@pytest.mark.long
def test_sos_check_repair_command_rebuilds_on_s3(s3_url: str) -> None:
    model = three_writers(s3_url, SECOND)
    damaged = DAMAGES["cut-mid-line"](manifest(s3_url))
    damage(s3_url, damaged)
    proc = sos_cli("check", "--repair", s3_url)
    assert "bad-manifest:" in proc.stdout and "rebuilt " in proc.stdout
    assert "best guess" in proc.stdout and "orphan-item" not in proc.stdout
    assert "repaired, now clean" in proc.stderr
    named, rest = model.expected(damaged)
    assert json.loads(sos_cli("dump", s3_url).stdout) == named + rest
    assert lost_and_found(s3_url) == []


def test_sos_adopt_brings_items_back_from_lost_and_found_on_s3(s3_url: str) -> None:
    with sos.List(s3_url) as lst:
        lst.append("kept")
    record = ["ffff-3", "aaaa-1", "ffff-1", "cccc-0"]
    files = plant_lost_items(s3_url, record)
    proc = sos_cli("adopt", s3_url, *files)
    assert "appended 4 items" in proc.stderr
    assert json.loads(sos_cli("dump", s3_url).stdout) == ["kept", *record]
    assert lost_and_found(s3_url) == ["order.txt"]
