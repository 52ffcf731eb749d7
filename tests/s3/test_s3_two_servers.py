"""Two object stores at once: endpoint, profile and credentials per store.

A second SeaweedFS (its own ports, its own credentials) beside the session's
server, which the AWS environment points at. A store reaches the second one
only through ``storage_options`` or the URL's query; secrets never show in
a URL, a message or a ``repr``.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

import sos
import sos.cli
from sos.storage.registry import open_storage

from .weed import S3Server, ServerError, running_server

KEY_B = "secondserverkey"
SECRET_B = "second-server-secret-0123456789"


@pytest.fixture(scope="module")
def second(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """Another weed mini, with credentials of its own (the environment's are A's)."""
    try:
        with running_server(
            tmp_path_factory.mktemp("second"), KEY_B, SECRET_B, go_threads=1
        ) as server:
            yield server
    except ServerError as exc:
        pytest.fail(f"the second S3 server did not start: {exc}", pytrace=False)


def _options(server: S3Server, **more: str) -> dict[str, str]:
    return {
        "endpoint_url": server.endpoint,
        "aws_access_key_id": server.access_key,
        "aws_secret_access_key": server.secret_key,
        **more,
    }


def _keys_under(server: S3Server, prefix: str) -> list[str]:
    client = server.client()
    try:
        page = client.list_objects_v2(Bucket=server.bucket, Prefix=prefix + "/")
        return [item["Key"] for item in page.get("Contents", ())]
    finally:
        client.close()


def test_a_value_copied_from_one_server_to_another_in_one_process(
    s3_server: S3Server, second: S3Server, s3_url: str
) -> None:
    prefix = s3_url.split("/", 3)[3]
    with sos.Dict(s3_url) as source:  # server A, from the AWS environment
        source["ada"] = {"born": 1815}
        with sos.Dict(s3_url, storage_options=_options(second)) as target:
            target["ada"] = source["ada"]
            assert target["ada"] == {"born": 1815} and list(target) == ["ada"]
        with sos.List(s3_url + "-list", storage_options=_options(second)) as lst:
            lst.extend([source["ada"], 2])
    with sos.open(s3_url, storage_options=_options(second)) as again:
        assert isinstance(again, sos.Dict) and dict(again.items()) == {"ada": {"born": 1815}}
    # The same URL is two different stores: each object on its own server.
    on_b = _keys_under(second, prefix)
    assert any(k.endswith(".json") and "/sos.json" not in k for k in on_b)
    assert sorted(_keys_under(s3_server, prefix)) == sorted(on_b)  # same names, both made
    assert sos.check(s3_url) == []
    with sos.List(s3_url + "-list", create=False, storage_options=_options(second)) as lst:
        assert list(lst) == [{"born": 1815}, 2]
    with pytest.raises(sos.Error, match="not a sos store"):
        sos.List(s3_url + "-list", create=False)  # not on A


def test_the_command_line_takes_endpoint_and_profile_in_the_url(
    second: S3Server, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[second]\naws_access_key_id = {KEY_B}\naws_secret_access_key = {SECRET_B}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    url = f"{s3_url}?endpoint={second.endpoint}&profile=second"
    assert sos.cli.main(["set", url, "lang", '"en"']) == 0
    out = io.StringIO()
    with redirect_stdout(out):
        assert sos.cli.main(["get", url, "lang"]) == 0
        assert sos.cli.main(["keys", url]) == 0
        assert sos.cli.main(["check", url]) == 0
    assert out.getvalue().splitlines()[:2] == ['"en"', "lang"]
    assert _keys_under(second, s3_url.split("/", 3)[3])  # written on B
    err = io.StringIO()
    with redirect_stderr(err):
        assert sos.cli.main(["get", s3_url, "lang"]) != 0  # A has no such store
    assert "not a sos store" in err.getvalue()


def test_a_wrong_secret_is_a_clear_error_naming_neither_key_nor_secret(
    second: S3Server, s3_url: str
) -> None:
    wrong = "wrong-secret-value-987654321"
    with pytest.raises(sos.Error) as caught:
        sos.Dict(s3_url, storage_options=_options(second, aws_secret_access_key=wrong))
    text = f"{caught.value} {caught.value!r} {caught.value.path}"
    assert second.endpoint in text and "refused the credentials" in text
    for secret in (wrong, KEY_B, SECRET_B):
        assert secret not in text
    storage = open_storage(s3_url, **_options(second))
    try:
        assert KEY_B not in repr(storage._options) and SECRET_B not in repr(storage._options)
        assert SECRET_B not in repr(storage) and storage.url == s3_url
    finally:
        storage.close()


def test_the_command_line_error_with_a_profile_names_neither_key_nor_secret(
    second: S3Server, s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        f"[bad]\naws_access_key_id = {KEY_B}\naws_secret_access_key = not-{SECRET_B}\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    err = io.StringIO()
    with redirect_stderr(err):
        assert sos.cli.main(["set", f"{s3_url}?endpoint={second.endpoint}&profile=bad", "k", "1"])
    assert second.endpoint in err.getvalue() and "Traceback" not in err.getvalue()
    assert KEY_B not in err.getvalue() and SECRET_B not in err.getvalue()


@pytest.mark.parametrize("name", ["secret", "aws_secret_access_key", "key", "token"])
def test_a_credential_in_a_url_is_refused_without_echoing_it(
    s3_server: S3Server, s3_url: str, name: str
) -> None:
    value = f"TOPSECRET{uuid.uuid4().hex}"
    with pytest.raises(sos.Error, match="credentials never go in a URL") as caught:
        sos.Dict(f"{s3_url}?endpoint={s3_server.endpoint}&{name}={value}")
    assert value not in str(caught.value) and value not in repr(caught.value)
    err = io.StringIO()
    with redirect_stderr(err):
        assert sos.cli.main(["get", f"{s3_url}?{name}={value}", "k"]) != 0
    assert "credentials never go in a URL" in err.getvalue() and value not in err.getvalue()
    with pytest.raises(sos.Error, match="may not hold credentials") as caught:
        sos.Dict(s3_url, storage_options={"endpoint_url": f"http://user:{value}@127.0.0.1:1"})
    assert value not in str(caught.value)


def test_bad_options_are_clear_errors(s3_url: str, tmp_path: Path) -> None:
    with pytest.raises(sos.Error, match="unknown storage option 'endpoint_uri'"):
        sos.Dict(s3_url, storage_options={"endpoint_uri": "http://127.0.0.1:1"})
    with pytest.raises(sos.Error, match="may not set 'colour'"):
        sos.Dict(f"{s3_url}?colour=blue")
    with pytest.raises(sos.Error, match="sets 'profile' twice"):
        sos.Dict(f"{s3_url}?profile=a&profile=b")
    with pytest.raises(sos.Error, match="must be an http:// or https:// URL"):
        sos.Dict(s3_url, storage_options={"endpoint_url": "ftp://127.0.0.1"})
    with pytest.raises(sos.Error, match="no AWS profile 'nobody-has-this'"):
        sos.Dict(s3_url, storage_options={"profile": "nobody-has-this"})
    with pytest.raises(sos.Error, match="not understood by local stores"):
        sos.Dict(tmp_path / "local", storage_options={"profile": "x"})
    assert not (tmp_path / "local").exists()


def test_a_pickled_handle_reopens_with_its_options(second: S3Server, s3_url: str) -> None:
    import pickle

    with sos.Dict(s3_url, storage_options=_options(second)) as db:
        db["x"] = 1
        again = pickle.loads(pickle.dumps(db))
        try:
            assert again["x"] == 1
        finally:
            again.close()
    # The value went through B: A has no store there.
    with pytest.raises(sos.Error, match="not a sos store"):
        sos.open(s3_url)
