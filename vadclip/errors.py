"""The one base class of "your input is wrong" errors.

Every error meant for the user (a file that is not a video, a damaged checkpoint, a bad
vocabulary, an option out of range, ...) derives from `UserError`; its message is one clear
sentence naming the input and the problem. The CLI and the app catch `UserError` only and show
its message; anything else is a bug and keeps its traceback. `UserError` is a `ValueError`, so
code that caught ValueError before keeps working.

The subclasses live next to the code that raises them (`video.VideoError`,
`safe_load.CheckpointError`, `formats.DataError`, `clip_backbone.ClipError`, `train.TrainError`,
`paths.PathEscapeError`); the two general ones are here.
"""
from __future__ import annotations


class UserError(ValueError):
    """An error caused by the user's input; shown as its message, without a traceback."""


class VocabularyError(UserError):
    """Class names a detector cannot take (empty, duplicated, too long, added to a fixed set...)."""


class OptionError(UserError):
    """A setting out of range (detection parameters, extraction or training options)."""


class TrainError(UserError):
    """A training run that cannot start: bad options, a refused output folder, a mismatched resume."""
