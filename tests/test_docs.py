"""The docs hold together: the API reference builds from the docstrings, and every Markdown link to a
repository file (docs/*.md, README.md) points at something that exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"""!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)""")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def markdown_links(text: str) -> list[str]:
    """Targets of ``[text](target)`` and ``![alt](target)`` outside code blocks and code spans."""
    text = _INLINE_CODE.sub("", _FENCE.sub("", text))
    return _LINK.findall(text)


def repository_links(page: Path) -> list[tuple[str, Path]]:
    """(link as written, resolved path) for each link of ``page`` that points into the repository."""
    found = []
    for target in markdown_links(page.read_text(encoding="utf-8")):
        if _EXTERNAL.match(target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0].split("?", 1)[0]
        found.append((target, (page.parent / path).resolve()))
    return found


def test_link_parser_skips_code_and_external_links():
    text = (
        "See [configs](configs.md#data) and ![plot](images/a.png 'title').\n"
        "`[not](a-link.md)` [web](https://example.org) [top](#install)\n"
        "```python\nx = [y](z.md)\n```\n"
    )
    assert markdown_links(text) == ["configs.md#data", "images/a.png", "https://example.org", "#install"]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_repository_links_resolve(page):
    missing = [target for target, path in repository_links(page) if not path.exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_docs_index_lists_every_page():
    linked = {path for _, path in repository_links(DOCS / "index.md")}
    pages = {p.resolve() for p in DOCS.glob("*.md") if p.name != "index.md"}
    assert not pages - linked, f"docs/index.md does not link {sorted(p.name for p in pages - linked)}"


def test_api_reference_builds_from_docstrings(tmp_path):
    pytest.importorskip("pdoc")
    out = tmp_path / "api"
    result = subprocess.run(
        [sys.executable, str(DOCS / "build_api.py"), "--output", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "does not resolve" not in result.stderr, result.stderr[-3000:]  # every __all__ name documented
    for page in ("index.html", "yolotl.html", "yolotl/models/checkpoint.html", "yolotl/models/detector.html",
                 "yolotl/api/eval_run.html", "yolotl/api/export_run.html", "yolotl/inference/onnx_runtime.html",
                 "yolotl/data/datamodule.html", "yolotl/training/callbacks.html"):
        assert (out / page).is_file(), page

    top = (out / "yolotl.html").read_text(encoding="utf-8")
    for anchor in ("load", "evaluate", "create_detector", "DetectionDataModule", "DetectionModule",
                   "Finetune", "EMA", "TorchDetector.predict", "OnnxDetector.predict", "export_onnx"):
        assert f'id="{anchor}"' in top, anchor
    # docstring text, rendered: load() reads weights only; predict() returns original-image pixels
    assert "yolotl-train</code> checkpoint" in top
    assert "original-image pixels" in top
    assert '<a href="#CheckpointError">yolotl.CheckpointError</a>' in top  # Sphinx roles become links
    assert "weights_only" in (out / "yolotl" / "models" / "checkpoint.html").read_text(encoding="utf-8")
