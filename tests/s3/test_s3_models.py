"""The hypothesis models of tests/test_models.py, unchanged, on an S3 store.

A plain dict and a plain list judge sos.Dict and sos.List living under a
fresh prefix of the real S3 server, across reopening and a second handle."""

from __future__ import annotations

import uuid

import pytest
from test_models import MODEL_SETTINGS, DictMachine, ListMachine, Location

from sos.storage.s3.storage import S3Storage

from .weed import BUCKET, S3Server

pytestmark = [pytest.mark.s3, pytest.mark.slow]  # a real server, and minutes: .ci/run -m slow


@pytest.fixture(autouse=True)
def _server(s3_server: S3Server) -> S3Server:
    """The machines below are unittest cases: the server reaches them this way."""
    return s3_server


class OnS3(Location):
    """A fresh prefix in the test bucket, emptied afterwards."""

    def new_location(self) -> str:
        self.url = f"s3://{BUCKET}/model-{uuid.uuid4().hex[:12]}"
        return self.url

    def drop_location(self) -> None:
        storage = S3Storage(self.url)
        try:
            storage.remove(list(storage.walk()))
        finally:
            storage.close()


class DictMachineOnS3(OnS3, DictMachine):
    pass


class ListMachineOnS3(OnS3, ListMachine):
    pass


DictMachineOnS3.TestCase.settings = MODEL_SETTINGS
ListMachineOnS3.TestCase.settings = MODEL_SETTINGS
TestDictModelOnS3 = DictMachineOnS3.TestCase
TestListModelOnS3 = ListMachineOnS3.TestCase
