"""Old import path of :mod:`magvit2.layers.model_io` (model I/O lives with the models). Kept so that
existing imports keep working; import from ``magvit2.layers.model_io`` in new code."""
from magvit2.layers.model_io import *  # noqa: F401,F403
from magvit2.layers.model_io import __all__, load_state_strict  # noqa: F401
