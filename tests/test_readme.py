"""The README's Python examples run, in order, as one program.

tests/test_docs.py runs every page (this README included) with its console
transcripts and compares what each block prints; this file stays as the
Python-only form that tests/windows/test_wine.py runs under Windows.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_readme_has_examples():
    assert len(python_blocks()) >= 2


def test_readme_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, block in enumerate(python_blocks(), 1):
        # as a reader's script: without this file's `from __future__ import annotations`
        code = compile(block, f"README.md python block {number}", "exec", dont_inherit=True)
        exec(code, namespace)
    for value in list(namespace.values()):
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.startswith("sos"):
            close()
