"""mkdocs hooks: publish the benchmark charts, which live beside their results, under ``results/``."""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add each chart in ``benchmarks/results`` to the site, so pages can show ``results/NAME.png``."""
    for chart in sorted(RESULTS.glob("*.png")):
        files.append(File.generated(config, f"results/{chart.name}", abs_src_path=str(chart)))
    return files
