"""MkDocs hook: the benchmark chart lives beside the run that drew it
(benchmarks/results/chart.png); serve it to the benchmarks page as chart.png
instead of keeping a second copy in docs/ that could fall behind."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

CHART = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "chart.png"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, "chart.png", abs_src_path=str(CHART)))
    return files
