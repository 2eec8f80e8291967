"""Fitting and evaluating compiled models: epoch logs, early stopping, divergence."""
