"""The one Hydra shell every ``yolotl-*`` command shares: config folder, config-typo check
(:mod:`yolotl.cli.overrides`), one-line user errors.

A command module is ``main = hydra_command("<config name>", task)``; its ``task`` imports
the library API inside the function, so ``--help`` and shell completion load Hydra only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from omegaconf import DictConfig

from yolotl.api.configs import config_dir
from yolotl.errors import YolotlError


@contextmanager
def cli_errors() -> Iterator[None]:
    """A user error (YolotlError, also inside Hydra instantiation) prints one ``yolotl: error: ...``
    line and exits with status 2 instead of a traceback."""
    from hydra.errors import InstantiationException

    try:
        yield
    except YolotlError as err:
        fail(err)
    except InstantiationException as err:
        if isinstance(err.__cause__, YolotlError):
            fail(err.__cause__)
        raise


def fail(err: Exception) -> NoReturn:
    """Print ``yolotl: error: <err>`` to stderr and exit with status 2."""
    print(f"yolotl: error: {err}", file=sys.stderr)
    raise SystemExit(2)


def register_resolvers() -> None:
    """``${yolotl_run_dir:<resume>,<default>}``: the folder of the run ``resume=`` names, else the
    default (conf/hydra/default.yaml); a bad ``resume`` is reported by the command, not here."""
    from omegaconf import OmegaConf

    def run_dir(resume: Any, default: str) -> str:
        if resume in (None, "", "null", "None"):
            return default
        from yolotl.api.resume import resume_point

        try:
            return str(resume_point(resume)[0])
        except YolotlError:
            return default

    OmegaConf.register_new_resolver("yolotl_run_dir", run_dir, replace=True)


def hydra_command(config_name: str, task: Callable[[DictConfig], Any]) -> Callable[[], None]:
    """The console-script ``main()`` running ``task`` under Hydra with ``conf/<config_name>.yaml``."""

    def main() -> None:
        import hydra

        from yolotl.cli.overrides import check_overrides

        try:
            check_overrides(config_dir(), config_name, sys.argv[1:])  # "did you mean", before Hydra's "+" advice
        except YolotlError as err:
            fail(err)
        register_resolvers()
        hydra.main(config_path=config_dir(), config_name=config_name, version_base="1.3")(task)()

    main.__doc__ = f"Console script for conf/{config_name}.yaml: {task.__doc__ or ''}".strip()
    return main
