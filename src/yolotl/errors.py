"""Exceptions yolotl raises for bad input: each message names the thing and the fix."""


class YolotlError(Exception):
    """Base class: a problem the user can fix (bad data, bad config, missing weights)."""


class DatasetError(YolotlError):
    """A dataset folder, split, annotation or image that cannot be used as given."""


class ConfigError(YolotlError):
    """A configuration value that cannot work (unknown name, impossible combination)."""


class BackboneError(ConfigError):
    """A backbone name timm does not know, or a model without ``features_only`` support."""


class TrainingDivergedError(YolotlError):
    """The training loss became NaN or infinite: the run stops (its checkpoints so far are kept)."""


class PretrainedWeightsError(YolotlError):
    """Pretrained weights that cannot be found, downloaded or mapped onto the backbone."""


class CheckpointError(YolotlError):
    """A checkpoint that is missing, unreadable, not yolotl's, or from an unsupported format version."""


def first_line(err: BaseException, limit: int = 300) -> str:
    """The first line of ``err``'s message, at most ``limit`` characters (its type name when empty),
    for one-line error messages that quote an underlying library's exception."""
    text = str(err).strip().splitlines()
    return text[0][:limit] if text else type(err).__name__
