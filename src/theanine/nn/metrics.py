"""Metrics ``(y_true, y_pred) -> value per example`` (symbolic), chosen by name.

'accuracy' (or 'acc') picks its form from the loss, as Keras does: thresholding
at 0.5 for binary cross-entropy, the arg-max against integer labels for the
sparse categorical loss, and arg-max against arg-max otherwise.
"""

from __future__ import annotations

import theanine.tensor as T
from theanine.nn import losses


def binary_accuracy(y_true, y_pred):
    """1 where (p > 0.5) equals the 0/1 target, averaged over the last axis."""
    return T.mean(T.eq(T.gt(y_pred, 0.5), T.gt(y_true, 0.5)), axis=-1)


def categorical_accuracy(y_true, y_pred):
    """1 where the predicted class (arg-max) is the target's arg-max."""
    return T.eq(T.argmax(y_pred, axis=-1), T.argmax(y_true, axis=-1))


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the predicted class (arg-max) is the integer label."""
    return T.eq(T.argmax(y_pred, axis=-1), y_true)


_BY_NAME = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mse": losses.mean_squared_error,
    "mae": losses.mean_absolute_error,
}


def get(metric, loss):
    """(name, function) for ``metric``: a name (accuracy resolved against ``loss``) or a
    callable (named after itself)."""
    if callable(metric):
        return metric.__name__, metric
    if metric in ("accuracy", "acc"):
        fn = losses.get(loss)
        if fn is losses.binary_crossentropy:
            return metric, binary_accuracy
        if fn is losses.sparse_categorical_crossentropy:
            return metric, sparse_categorical_accuracy
        return metric, categorical_accuracy
    try:
        return metric, _BY_NAME[metric]
    except (KeyError, TypeError):
        known = ["accuracy", "acc", *sorted(_BY_NAME)]
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(known)}") from None
