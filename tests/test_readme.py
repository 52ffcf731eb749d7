"""The README's Python examples run, in order, as one program.

tests/test_docs.py runs every page (this README included) with its console
transcripts and compares what each block prints; this file stays as the
Python-only form that tests/windows/test_wine.py runs under Windows.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def _typed_blocks_can_run() -> bool:
    """Typed stores need pydantic. Under Wine, pydantic-core's compiled module
    does not load (docs/windows.md), so tests/windows runs the README without
    its typed-store blocks; everywhere else they run like the others."""
    if sys.platform != "win32":
        return True
    try:
        import pydantic  # noqa: F401
    except ImportError:
        return False
    return True


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    typed = _typed_blocks_can_run()
    blocks = [b for b in python_blocks() if typed or "value_type=" not in b]
    assert len(blocks) >= 2
    for number, block in enumerate(blocks, 1):
        # as a reader's script: without this file's `from __future__ import annotations`
        code = compile(block, f"README.md python block {number}", "exec", dont_inherit=True)
        exec(code, namespace)
    for value in list(namespace.values()):
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.startswith("sos"):
            close()
