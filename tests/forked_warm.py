"""What tests/forked.py's fork server loads once, so that each child it forks
need not: sos with its command line, and an S3 client's botocore models (the
client itself is closed; a child makes its own from its own environment)."""

from __future__ import annotations

import sos
import sos.cli
import sos.storage.s3.storage
from sos.cli.run import load_commands
from sos.storage.s3 import client
from sos.storage.s3.options import S3Options

__all__ = ["sos"]

load_commands()  # every command's module, which sos.cli.main imports as needed

client.new_client(
    S3Options(
        endpoint_url="http://127.0.0.1:9",  # never contacted
        region="us-east-1",
        access_key_id="warm",
        secret_access_key="warm",
    )
).close()
