"""A real S3 server for the S3 tests: SeaweedFS (``weed mini``) on 127.0.0.1.

Started once per test session (tests/s3/weed.py), stopped at the end. The
tests see it through the standard AWS variables only (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, ...), as users' programs would. A server that cannot start
FAILS the tests, never skips them: .ci/s3.sh installs it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from weed import S3Server, ServerError, running_server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1, and the AWS variables pointing at it."""
    base = tmp_path_factory.mktemp("seaweedfs")
    try:
        server_context = running_server(base)
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
def s3_url(s3_server: S3Server) -> str:
    """A fresh, empty prefix in the test bucket: ``s3://sos-test/<unique>``."""
    return f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}"
