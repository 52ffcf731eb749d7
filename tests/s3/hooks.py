"""Hooks on the botocore clients sos makes, for tests that watch requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from sos.storage.s3 import client as s3_client


def on_new_clients(
    monkeypatch: pytest.MonkeyPatch, event: str, handler: Callable[..., Any]
) -> None:
    """Every client made from now on calls ``handler`` on ``event`` (a store
    made earlier may share an older client: take ``private_clients`` and
    make the stores after this)."""
    original = s3_client.new_client

    def new_client(*args: Any, **kwargs: Any) -> Any:
        client = original(*args, **kwargs)
        client.meta.events.register(event, handler)
        return client

    monkeypatch.setattr(s3_client, "new_client", new_client)
