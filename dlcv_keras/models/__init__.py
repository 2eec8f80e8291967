"""Keras functional-API model builders. Each returns an uncompiled ``keras.Model``.

Names are loaded on first use: importing keras takes seconds, and the CLI checks its
input (question names, search-space files) before it needs a model.
"""

_EXPORTS = {
    "BUILDERS": "builders", "build_linear": "builders", "build_mlp": "builders",
    "build_cnn": "builders", "build_tiny_cnn": "builders", "build_resnet18": "builders", "build_vgg": "builders", "get_builder": "builders", "parameter_table": "builders", "compile_model": "compile",
    "classification_loss": "compile",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f"dlcv_keras.models.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'dlcv_keras.models' has no attribute {name!r}")
