"""Experiment kinds, one module each; the registry finds a kind by name and a report view by template.

Adding a kind: a module here with its declaration (an ``Experiment`` subclass with ``KIND``,
``VIEWS`` and ``SETTINGS``), its run step and its ``VIEWS`` functions, a template per view in
report_templates/sections/, and one line in ``_MODULES`` below. Adding a question that reuses
kinds touches none of this (docs/adding-a-question.md).
"""

from __future__ import annotations

from types import ModuleType
from typing import Callable

from dlcv_keras.experiments import (activation_maps, augmented_examples, comparison, conv_blur, conv_regression,
                                    evaluate_best, finite_difference, layer_statistics, misclassified,
                                    weight_images,
                                    parameter_table,
                                    pretrained_source, scalar_gradients, search, sklearn_logistic, toy_training,
                                    two_layer_check)
from dlcv_keras.experiments.activation_maps import ActivationMaps
from dlcv_keras.experiments.augmented_examples import AugmentedExamples
from dlcv_keras.experiments.base import Experiment
from dlcv_keras.experiments.comparison import RunComparison
from dlcv_keras.experiments.conv_blur import ConvBlur
from dlcv_keras.experiments.conv_regression import ConvRegression
from dlcv_keras.experiments.evaluate_best import EvaluateBest
from dlcv_keras.experiments.finite_difference import FiniteDifferenceSweep
from dlcv_keras.experiments.misclassified import MisclassifiedGallery
from dlcv_keras.experiments.parameter_table import ParameterTable
from dlcv_keras.experiments.pretrained_source import PretrainedSource
from dlcv_keras.experiments.scalar_gradients import ScalarGradients
from dlcv_keras.experiments.search import Search
from dlcv_keras.experiments.sklearn_logistic import SklearnLogistic
from dlcv_keras.experiments.toy_training import ToyTraining
from dlcv_keras.experiments.two_layer_check import TwoLayerCheck
from dlcv_keras.experiments.weight_images import WeightImages

_MODULES: tuple[ModuleType, ...] = (search, evaluate_best, sklearn_logistic, comparison, scalar_gradients, conv_blur,
                                    conv_regression, two_layer_check, toy_training, finite_difference, parameter_table,
                                    augmented_examples, activation_maps, misclassified, pretrained_source,
                                    layer_statistics, weight_images)

# kind name -> its declaration class
KINDS: dict[str, type[Experiment]] = {cls.KIND: cls for cls in (
    Search, EvaluateBest, SklearnLogistic, RunComparison, ScalarGradients, ConvBlur, ConvRegression, TwoLayerCheck,
    ToyTraining, FiniteDifferenceSweep, ParameterTable, AugmentedExamples, ActivationMaps, MisclassifiedGallery,
    PretrainedSource, WeightImages)}


def _collect(attribute: str) -> dict:
    found: dict = {}
    for module in _MODULES:
        for template, value in getattr(module, attribute, {}).items():
            if template in found:
                raise RuntimeError(f"report template {template!r} is claimed by two experiment kinds")
            found[template] = value
    return found


# report template -> the function turning an experiment's stored files into the template's values
VIEWS: dict[str, Callable] = _collect("VIEWS")
# report template -> files it needs besides summary.json, checked before any figure is drawn
REQUIRED_FILES: dict[str, tuple[str, ...]] = _collect("REQUIRED_FILES")


def get_kind(name: str) -> type[Experiment]:
    return KINDS[name]


__all__ = ["Experiment", "KINDS", "VIEWS", "REQUIRED_FILES", "get_kind", "ActivationMaps", "AugmentedExamples",
           "MisclassifiedGallery", "ParameterTable", "PretrainedSource", "ConvBlur", "ConvRegression",
           "EvaluateBest", "FiniteDifferenceSweep", "RunComparison", "ScalarGradients", "Search", "SklearnLogistic",
           "ToyTraining", "TwoLayerCheck", "WeightImages"]
