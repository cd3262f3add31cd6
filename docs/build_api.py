"""Build the HTML API reference of the ``yolotl`` package from its docstrings, with pdoc.

    python docs/build_api.py                      # -> docs/_build/api/index.html (git-ignored)
    python docs/build_api.py --output /tmp/api

Needs ``pdoc`` (in the ``dev`` extra). Every public module, class and function of ``yolotl`` gets a
page section; docstrings are read as Google style (``Args:``, ``Raises:``) with reStructuredText
markup. Open ``index.html`` in a browser; the pages are static and link to each other.
"""

from __future__ import annotations

import argparse
import importlib
import re
import warnings
from pathlib import Path
from types import ModuleType

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "_build" / "api"
_SPHINX_TILDE = re.compile(r"(:(?:mod|func|data|const|class|meth|attr|exc|obj):)`~")


def build(output: str | Path = DEFAULT_OUTPUT) -> Path:
    """Write the reference of ``yolotl`` and its submodules to ``output``; return the path of ``index.html``."""
    import pdoc
    import pdoc.docstrings
    import pdoc.render

    import yolotl

    # Deprecation chatter from imported libraries is not about the docs; a subpackage whose __all__
    # names one of its own submodules (yolotl.evaluate, yolotl.ops.postprocess) is found twice.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="The module specification .* has already been added")
    pdoc.render.configure(
        docformat="google",
        footer_text=f"yolotl {yolotl.__version__}",
        search=True,
        show_source=True,
    )
    _accept_sphinx_tilde(pdoc)
    modules = public_modules()
    for name in modules:
        _resolve_lazy_names(importlib.import_module(name))
    output = Path(output)
    pdoc.pdoc(*modules, output_directory=output)
    return output / "index.html"


def _accept_sphinx_tilde(pdoc: ModuleType) -> None:
    """Docstrings use Sphinx's ``:class:`~yolotl.X``` (show the short name); pdoc converts the role but
    keeps the ``~``, which breaks the link. Drop the ``~`` before pdoc reads the docstring."""
    convert = getattr(pdoc.docstrings, "convert", None)
    if convert is None or getattr(convert, "_yolotl_tilde", False):
        return

    def convert_without_tilde(docstring: str, docformat: str, source_file: Path | None) -> str:
        return convert(_SPHINX_TILDE.sub(r"\1`", docstring), docformat, source_file)

    convert_without_tilde._yolotl_tilde = True  # type: ignore[attr-defined]
    pdoc.docstrings.convert = convert_without_tilde


def _resolve_lazy_names(module: ModuleType) -> None:
    """Bind the ``__all__`` names a module imports on first access (``yolotl.OnnxDetector``,
    ``yolotl.data.DetectionDataModule``, ...): pdoc lists only what the module already holds."""
    for name in getattr(module, "__all__", []):
        if name not in vars(module):
            setattr(module, name, getattr(module, name))


def public_modules() -> list[str]:
    """``yolotl`` and every submodule without a leading underscore in its dotted name.

    Passed to pdoc one by one: a package with ``__all__`` would otherwise show only the submodules
    its ``__all__`` names.
    """
    import pkgutil

    import yolotl

    names = [info.name for info in pkgutil.walk_packages(yolotl.__path__, prefix="yolotl.")]
    return ["yolotl", *sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Build the yolotl API reference (HTML) with pdoc.")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="output folder (%(default)s)")
    args = parser.parse_args()
    print(f"API reference: {build(args.output)}")
