"""cnnlab: the canon of convolutional network design, paper-exact.

Build the networks as their papers describe them, measure them, train them on real data,
compress and search them.
"""

from cnnlab.profile import Profile, profile
from cnnlab.registry import Paper, create_model, list_models, model_info, register_model

__version__ = "0.1.0"
__all__ = ["Paper", "Profile", "create_model", "list_models", "model_info", "profile",
           "register_model"]


def __getattr__(name):
    # compress/train pull in optional dependencies: import them on first use only
    if name == "load_compressed":
        from cnnlab.compress import load_compressed

        return load_compressed
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")
