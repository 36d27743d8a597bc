"""Model families, one file each; importing this package registers them all, then
offers the factory over them (``create_model``, ``list_models``, ``model_info``)."""

import importlib
import pkgutil

for _m in pkgutil.iter_modules(__path__):
    if not _m.name.startswith("_") and _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

from cnnlab.models._factory import create_model, list_models, model_info  # noqa: E402

__all__ = ["create_model", "list_models", "model_info"]
