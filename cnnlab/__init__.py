"""cnnlab: the canon of convolutional network design, paper-exact.

Build the networks as their papers describe them, measure them, train them on real data,
compress and search them.
"""

import sys
import types

__version__ = "0.1.0"
__all__ = ["Paper", "Profile", "create_model", "list_models", "load_weights", "model_info",
           "profile", "register_model"]

# where each public name lives: imported on first use, so that `import cnnlab` (and
# `cnnlab --help`) does not load torch and every model
_LAZY = {"Paper": "cnnlab.registry", "create_model": "cnnlab.models",
         "list_models": "cnnlab.models", "model_info": "cnnlab.models",
         "register_model": "cnnlab.registry", "Profile": "cnnlab.profile",
         "profile": "cnnlab.profile", "load_compressed": "cnnlab.compress",
         "load_weights": "cnnlab.pretrained"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *_LAZY})


class _Package(types.ModuleType):
    """``cnnlab.profile`` stays the function although ``cnnlab/profile/`` is a subpackage:
    the import system's binding of the subpackage to the name is not kept."""

    def __setattr__(self, name, value):
        if not (name in _LAZY and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
