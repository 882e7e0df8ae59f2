"""Old import path of :mod:`magvit2.tokenizer.config` (typed configs live beside their modules; this
package holds only the config mechanism). Kept so that existing imports keep working; import from
``magvit2.tokenizer.config`` in new code."""
from magvit2.tokenizer.config import *  # noqa: F401,F403
from magvit2.tokenizer.config import __all__  # noqa: F401
