"""The ``yolotl-*`` console scripts: one thin Hydra module per command over the library API.

Commands import the library API (inside their task, so ``--help`` stays fast) and
:mod:`yolotl.cli.shell`, never each other; ``import yolotl`` imports none of them.
"""
