"""From a path or URL to its storage: a registry by scheme, imported lazily.

As fsspec's registry: a scheme maps to ``"module:Class"``, imported on the
first path that needs it, so ``import sos`` loads no backend it does not use
(boto3 only for ``s3://``) and the local directory is one entry like any
other. A path without ``scheme://`` is a local directory.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

from sos.errors import Error
from sos.storage.base import Storage

__all__ = ["open_storage", "register_scheme", "scheme_of"]

LOCAL = ""  # the key of paths without a scheme

# scheme -> "module:Class" (imported on first use) or a factory(url).
_REGISTRY: dict[str, str | Callable[..., Storage]] = {
    LOCAL: "sos.storage.local:LocalStorage",
    "memory": "sos.storage.memory:MemoryStorage",
    "s3": "sos.storage.s3.storage:S3Storage",
}


def register_scheme(scheme: str, factory: str | Callable[[str], Storage]) -> None:
    """Make ``scheme://…`` paths open through ``factory(url)``, or through the
    class a ``"module:Class"`` string names (imported when first needed)."""
    _REGISTRY[scheme.lower()] = factory


def scheme_of(path: str) -> str | None:
    """``"s3"`` for ``s3://…``; None for a local path."""
    head, sep, _ = path.partition("://")
    if sep and head.isalnum() and len(head) > 1:  # "C://" is a Windows drive, not a scheme
        return head.lower()
    return None


def open_storage(path: str | os.PathLike[str], **options: Any) -> Storage:
    """The storage for ``path``: a local directory, or ``scheme://…``.

    ``options`` go to the storage's constructor (``storage_options`` of
    Dict, List and open: an S3 store's endpoint, profile, credentials); a
    storage that takes none refuses them with a clear :class:`Error`."""
    text = os.fspath(path)
    scheme = scheme_of(text) or LOCAL
    entry = _REGISTRY.get(scheme)
    if entry is None:
        raise Error(f"{text}: no storage for {scheme}:// paths", text)
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
        _REGISTRY[scheme] = entry
    factory: Callable[..., Storage] = entry
    if not options:
        return factory(text)
    import inspect  # only with options: 11 ms every `import sos` would pay

    try:
        inspect.signature(factory).bind(text, **options)
    except TypeError:
        raise Error(
            f"{text}: storage options {', '.join(sorted(options))} are not understood by "
            f"{scheme or 'local'} stores",
            text,
        ) from None
    except ValueError:  # no signature to look at (a builtin): let the call decide
        pass
    return factory(text, **options)
