"""Config typos get the right fix: ``trainer.max_epoch=1`` -> "did you mean trainer.max_epochs?".

Hydra answers an unknown key with "To append to your config use +trainer.max_epoch=1", which then
fails inside the Trainer with a TypeError. Before Hydra runs the command, :func:`check_overrides`
composes the config once and checks each ``key=value`` and ``+key=value`` against the real keys of
that node and the signature of the object it builds (``_target_``). It only ever adds a clearer
error: anything it cannot judge (sweeps, syntax errors, keys a ``**kwargs`` target may accept) is
left to Hydra.
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from yolotl.api.moved_keys import moved_key_message
from yolotl.errors import ConfigError

_NOT_OVERRIDABLE = re.compile(r"Could not override '([^']+)'")


def check_overrides(config_dir: str, config_name: str, args: Sequence[str]) -> None:
    """ConfigError naming the closest real key for an override whose key does not exist."""
    lines = [a for a in args if not a.startswith("-") and "=" in a and not a.lstrip("+~").startswith("hydra.")]
    if not lines:
        return
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(lines)
    except Exception:  # noqa: BLE001 - a syntax error is Hydra's to report
        return
    swept = {o.key_or_group.split(".")[0] for o in parsed if o.is_sweep_override()}
    plain = [o for o in parsed if not o.is_sweep_override() and not o.is_delete()]
    added = [o for o in plain if (o.is_add() or o.is_force_add()) and "." in o.key_or_group]
    # composed without the added keys, so each is judged against what the config had
    cfg, unknown = _compose(config_dir, config_name, [o.input_line for o in plain if o not in added])
    if cfg is None:
        return
    if unknown is not None:
        if unknown.split(".")[0] not in swept:
            _check_key(cfg, unknown, added=False)
        return
    for override in added:
        if override.key_or_group.split(".")[0] not in swept:
            _check_key(cfg, override.key_or_group, added=True)


def _compose(config_dir: str, config_name: str, overrides: list[str]) -> tuple[DictConfig | None, str | None]:
    """The composed config and the key Hydra could not override (None: every override applied).
    Without the offending override when there is one; (None, None) if it cannot be composed."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    unknown = None
    for _ in range(2):
        try:
            with initialize_config_dir(config_dir=config_dir, version_base="1.3"):
                return compose(config_name=config_name, overrides=overrides), unknown
        except HydraException as err:
            found = _NOT_OVERRIDABLE.search(str(err))
            if found is None or unknown is not None:
                return None, None
            unknown = found.group(1)
            overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+") != unknown]
    return None, None


def _check_key(cfg: DictConfig, key: str, added: bool) -> None:
    moved = moved_key_message(key)
    if moved is not None:
        raise ConfigError(moved)
    parent_key, _, name = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    if not isinstance(parent, DictConfig):
        _unknown_parent(cfg, parent_key, key)
        return
    listed = [str(k) for k in parent.keys() if k != "_target_"]
    target, arguments, open_ended = _target_arguments(parent)
    if name in listed or name in arguments:
        return  # a real key; or a real argument the config does not list, where "+key=value" is right
    if open_ended or (added and target is None):
        return  # **kwargs, or a plain mapping: it may take new keys
    where = f"{parent_key}" if parent_key else "the config"
    matches = difflib.get_close_matches(name, list(dict.fromkeys(listed + arguments)), n=3, cutoff=0.6)
    built = f" ({target})" if target else ""
    if matches:
        options = " or ".join(f"{parent_key + '.' if parent_key else ''}{m}" for m in matches)
        raise ConfigError(f"{key}: {where}{built} has no key '{name}'; did you mean {options}?")
    raise ConfigError(f"{key}: {where}{built} has no key '{name}'; its keys are {sorted(set(listed + arguments))}")


def _unknown_parent(cfg: DictConfig, parent_key: str, key: str) -> None:
    head = parent_key.split(".")[0]
    if head in cfg:
        return  # a deeper path; Hydra's own message names it
    matches = difflib.get_close_matches(head, [str(k) for k in cfg.keys()], n=3, cutoff=0.6)
    if matches:
        fixed = key.replace(head, matches[0], 1)
        raise ConfigError(f"{key}: the config has no '{head}'; did you mean {fixed}?")


def _target_arguments(node: DictConfig) -> tuple[str | None, list[str], bool]:
    """(``_target_``, its keyword arguments, whether it takes ``**kwargs``) for a node that builds an object."""
    target = node.get("_target_") if "_target_" in node else None
    if not isinstance(target, str):
        return None, [], False
    try:
        from hydra.utils import get_object

        made: Any = get_object(target)
        signature = inspect.signature(made)
    except Exception:  # noqa: BLE001 - cannot judge: leave it to Hydra
        return target, [], True
    params = list(signature.parameters.values())
    open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return target, [p.name for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL], open_ended
