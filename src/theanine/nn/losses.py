"""Loss functions ``(y_true, y_pred) -> loss per example`` (symbolic), chosen by name.

Each reduces only the last axis (the classes or output units); the model
averages what remains. Applied to a sigmoid or softmax output, the
cross-entropies are rewritten by theanine into forms that stay finite for
saturated units, so no clipping is needed.
"""

from __future__ import annotations

import theanine.tensor as T


def binary_crossentropy(y_true, y_pred):
    """-(t log p + (1 - t) log(1 - p)), averaged over the last axis."""
    return T.mean(T.nnet.binary_crossentropy(y_pred, y_true), axis=-1)


def categorical_crossentropy(y_true, y_pred):
    """-sum(t log p) over the last axis, for one-hot (or soft) targets ``y_true``."""
    return T.nnet.categorical_crossentropy(y_pred, y_true)


def sparse_categorical_crossentropy(y_true, y_pred):
    """-log p[label] for integer labels ``y_true`` (one dimension less than ``y_pred``)."""
    return T.nnet.categorical_crossentropy(y_pred, y_true)


def mean_squared_error(y_true, y_pred):
    """The mean of (p - t)**2 over the last axis."""
    return T.mean(T.sqr(y_pred - y_true), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """The mean of |p - t| over the last axis."""
    return T.mean(abs(y_pred - y_true), axis=-1)


_BY_NAME = {
    "binary_crossentropy": binary_crossentropy,
    "categorical_crossentropy": categorical_crossentropy,
    "sparse_categorical_crossentropy": sparse_categorical_crossentropy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mae": mean_absolute_error,
}


def get(loss):
    """The loss named ``loss``, or ``loss`` itself if callable."""
    if callable(loss):
        return loss
    try:
        return _BY_NAME[loss]
    except (KeyError, TypeError):
        raise ValueError(f"unknown loss {loss!r}; known: {', '.join(sorted(_BY_NAME))}") from None


def is_sparse(loss):
    """Whether ``loss`` takes integer labels rather than targets shaped like the output."""
    return get(loss) is sparse_categorical_crossentropy
