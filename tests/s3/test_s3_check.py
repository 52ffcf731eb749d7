"""``sos check`` on object storage, against the real SeaweedFS server: directory
markers (0-byte objects whose key ends in ``/``) are invisible to readers and
to check, and ``--repair`` removes them; no unreadable data file is passed
over on S3 either (issue 19)."""

from __future__ import annotations

from pathlib import Path

import damage
import forked
import pytest

import sos
from sos.format.names import is_fanout_name, key_relpath

from .weed import S3Server

pytestmark = [
    pytest.mark.s3,  # a real server: .ci/s3.sh installs it
    pytest.mark.usefixtures("fork_server"),  # its child processes: tests/forked.py
]


def split(url: str) -> tuple[str, str]:
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    return bucket, prefix


def put_marker(server: S3Server, url: str, directory: str) -> None:
    """A "folder" object made by hand, as the AWS console or rclone make them."""
    bucket, prefix = split(url)
    key = f"{prefix}/{directory}/" if directory else f"{prefix}/"
    client = server.client()
    try:
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    finally:
        client.close()


def markers(server: S3Server, url: str) -> list[str]:
    """The keys ending in ``/`` that a delimited LIST shows: the store's root
    marker and each fan-out directory's own (SeaweedFS shows the marker of an
    empty directory only in such a listing; its ``.sos/``, emptied after each
    lease, is left to it)."""
    bucket, prefix = split(url)
    client = server.client()
    found = []
    try:
        top = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/", Delimiter="/")
        dirs = [p["Prefix"] for p in top.get("CommonPrefixes", ()) if is_fanout(p["Prefix"])]
        for listed in [top] + [
            client.list_objects_v2(Bucket=bucket, Prefix=d, Delimiter="/") for d in dirs
        ]:
            found += [o["Key"] for o in listed.get("Contents", ()) if o["Key"].endswith("/")]
    finally:
        client.close()
    return sorted(found)


def is_fanout(prefix: str) -> bool:
    return is_fanout_name(prefix.rstrip("/").rpartition("/")[2])


def sos_cli(*args: str) -> forked.Child:
    return forked.run("-m", "sos", *args)


def test_deleting_the_last_key_of_a_directory_leaves_a_clean_store(
    s3_server: S3Server, s3_url: str
) -> None:
    """SeaweedFS keeps the emptied fan-out directory as a 0-byte ``d1/`` object:
    check used to call it not-a-directory, exit 1, and repair could not fix it."""
    with sos.Dict(s3_url) as db:
        db["ada"] = {"born": 1815}
        db["grace"] = {"born": 1906}
        del db["grace"]
    fan = key_relpath("grace")[:2]
    assert f"{split(s3_url)[1]}/{fan}/" in markers(s3_server, s3_url)  # what the server does
    assert sos.check(s3_url) == []
    proc = sos_cli("check", s3_url)
    assert (proc.returncode, proc.stdout) == (0, "clean: 1 key, 0 problems\n"), proc.stderr
    [removed] = sos.check(s3_url, repair=True)
    assert (removed.code, removed.path) == ("directory-marker", f"{s3_url}/{fan}/")
    assert removed.action == "removed" and removed.code.repairable
    assert markers(s3_server, s3_url) == []
    with sos.Dict(s3_url) as db:
        assert dict(db) == {"ada": {"born": 1815}}
        db["grace"] = 1  # the directory comes back as it is written into
        assert db["grace"] == 1


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_hand_made_markers_are_ignored_then_removed(
    s3_server: S3Server, s3_url: str, kind: str
) -> None:
    """Markers at the store's root, in a full and in an empty fan-out directory:
    reads, iteration, len, watch and check see none; --repair removes them."""
    if kind == "dict":
        store: sos.Dict | sos.List = sos.Dict(s3_url)
        store.update({"ada": 1815, "alan": 1912})
        expected: object = {"ada": 1815, "alan": 1912}
        full = key_relpath("ada")[:2]
    else:
        store = sos.List(s3_url)
        store.extend(["milk", "eggs"])
        expected = ["milk", "eggs"]
        full = Path(store.path_of(0)).parent.name
    empty = next(f"{i:02x}" for i in range(256) if f"{i:02x}" != full)
    with store, store.watch(poll=0.1) as watcher:
        for directory in ("", full, empty):
            put_marker(s3_server, s3_url, directory)
        with sos.open(s3_url) as other:
            assert len(other) == 2
            if kind == "dict":
                assert dict(other.items()) == expected and sorted(other) == sorted(expected)
            else:
                assert list(other) == expected
        assert watcher.get(timeout=0.5) is None  # a marker is no change
        if kind == "dict":
            store["linus"] = 1969
        else:
            store.append("jam")
        change = watcher.get(timeout=10)
        assert change is not None and change.kind in ("set", "changed"), change
        assert watcher.get(timeout=0.3) is None
    assert sos.check(s3_url) == []
    found = sos.check(s3_url, repair=True)
    assert [(p.code, p.action) for p in found] == [("directory-marker", "removed")] * 3
    assert sorted(p.path for p in found) == sorted(
        [f"{s3_url}/", f"{s3_url}/{full}/", f"{s3_url}/{empty}/"]
    )
    assert markers(s3_server, s3_url) == []
    assert sos.check(s3_url, repair=True) == []
    with sos.open(s3_url) as again:
        assert len(again) == 3


def test_check_repair_on_the_command_line_removes_markers(s3_server: S3Server, s3_url: str) -> None:
    with sos.Dict(s3_url) as db:
        db["ada"] = 1
    put_marker(s3_server, s3_url, "ff")
    proc = sos_cli("check", "--repair", s3_url)
    assert proc.returncode == 0, proc.stderr
    assert f"directory-marker: {s3_url}/ff/:" in proc.stdout and "[removed]" in proc.stdout
    assert "repaired, now clean" in proc.stderr
    assert markers(s3_server, s3_url) == []


@pytest.mark.parametrize("case", sorted(damage.CASES))
@pytest.mark.parametrize("kind", ["dict", "list"])
def test_check_never_reports_clean_while_a_data_file_is_unreadable(
    s3_url: str, kind: str, case: str
) -> None:
    damage.assert_never_clean(s3_url, kind, case)


def test_repair_moves_misplaced_and_leaves_bad_json_in_place(s3_url: str) -> None:
    from sos.storage.registry import open_storage

    with sos.Dict(s3_url) as db:
        db["ada"] = 1
    storage = open_storage(s3_url)
    typo = b'{"key": "grace", "value": {"born": 1906},}\n'
    try:
        storage.write("linus.json", damage.doc("linus", 1969))
        storage.write("grace.json", typo)
        found = sos.check(s3_url, repair=True)
        assert sorted((p.code, p.path) for p in found) == [
            ("invalid-json", f"{s3_url}/grace.json"),
            ("misplaced", f"{s3_url}/linus.json"),
        ]
        assert storage.read("grace.json") == typo and not storage.exists("linus.json")
    finally:
        storage.close()
    with sos.Dict(s3_url) as db:
        assert db["linus"] == 1969
    [left] = sos.check(s3_url)
    assert (left.code, left.line, left.column) == ("invalid-json", 1, 42)
