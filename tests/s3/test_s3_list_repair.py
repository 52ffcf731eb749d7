"""A List on S3 whose manifest was emptied or damaged: ``sos check --repair``
rebuilds it from the item objects, writers ordered by the objects'
Last-Modified (whole seconds, so each writer's turn starts in a later second
than the last turn's writes), through the Python API and the command line;
nothing goes to lost+found."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from cli_helpers import sos as sos_cli
from test_list_repair import (
    DAMAGES,
    TURNS,
    Model,
    assert_rebuilt,
    damage,
    lost_and_found,
    manifest,
    plant_lost_items,
)

import sos
from sos.storage.registry import open_storage

from .weed import S3Server

pytestmark = pytest.mark.s3  # a real server: .ci/s3.sh installs it

# One list per test below, each damaged its own way.
LISTS = ["empty", "prefix-then-garbage", "cut-mid-line"]


def after_the_second_of(urls: list[str]) -> None:
    """Wait until the clock is past the whole second of the stores' last
    write (their manifests' Last-Modified, written after their items): a
    write from now on has a later Last-Modified, whether the server
    truncates or rounds. The server runs on this machine, on this clock."""
    latest = 0.0
    for url in urls:
        storage = open_storage(url)
        try:
            modified = storage.modified("order.txt")
        finally:
            storage.close()
        assert modified is not None
        latest = max(latest, modified)
    while (left := latest + 1.01 - time.time()) > 0:
        time.sleep(left)


@pytest.fixture(scope="module")
def written(s3_server: S3Server) -> dict[str, Model]:
    """test_list_repair's three writers (runs A, B, A, C, B), on one fresh
    list per test, written together: each turn appends to every list, and
    a turn of another writer starts in a later second than the last turn's
    writes. The waits for the next second (~1 s each) are paid once, not
    once per test."""
    urls = [f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}" for _ in LISTS]
    models = [Model(url, tick=0) for url in urls]  # the waits are below
    last = None
    for handle, count in TURNS:
        if last is not None and handle != last:
            after_the_second_of(urls)
        for model in models:
            model.append(handle, count)
        last = handle
    for model in models:
        model.close()
        assert len(manifest(model.location).splitlines()) == 6  # the header and five runs
    return dict(zip(LISTS, models, strict=True))


@pytest.mark.parametrize("kind", ["empty", "prefix-then-garbage"])
@pytest.mark.long
def test_a_damaged_manifest_is_rebuilt_on_s3(written: dict[str, Model], kind: str) -> None:
    model = written[kind]
    url = model.location
    damaged = DAMAGES[kind](manifest(url))
    damage(url, damaged)
    found = sos.check(url, repair=True)
    assert_rebuilt(url, model, damaged, found)


@pytest.mark.long
def test_sos_check_repair_command_rebuilds_on_s3(written: dict[str, Model]) -> None:
    model = written["cut-mid-line"]
    url = model.location
    damaged = DAMAGES["cut-mid-line"](manifest(url))
    damage(url, damaged)
    proc = sos_cli("check", "--repair", url)
    assert "bad-manifest:" in proc.stdout and "rebuilt " in proc.stdout
    assert "best guess" in proc.stdout and "orphan-item" not in proc.stdout
    assert "repaired, now clean" in proc.stderr
    named, rest = model.expected(damaged)
    assert json.loads(sos_cli("dump", url).stdout) == named + rest
    assert lost_and_found(url) == []


def test_sos_adopt_brings_items_back_from_lost_and_found_on_s3(s3_url: str) -> None:
    with sos.List(s3_url) as lst:
        lst.append("kept")
    record = ["ffff-3", "aaaa-1", "ffff-1", "cccc-0"]
    files = plant_lost_items(s3_url, record)
    proc = sos_cli("adopt", s3_url, *files)
    assert "appended 4 items" in proc.stderr
    assert json.loads(sos_cli("dump", s3_url).stdout) == ["kept", *record]
    assert lost_and_found(s3_url) == ["order.txt"]
