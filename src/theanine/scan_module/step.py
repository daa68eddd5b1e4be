"""What a scan step function returns: outputs, updates and a stop condition."""

from __future__ import annotations

from collections import OrderedDict

from theanine.compile.sharedvalue import SharedVariable
from theanine.tensor.variable import as_tensor_variable


class until:  # noqa: N801  (Theano's name)
    """Returned by a scan step (alone or with outputs and updates): stop after the step
    where ``condition`` is true. The outputs then hold only the steps that ran."""

    def __init__(self, condition):
        condition = as_tensor_variable(condition)
        if condition.ndim != 0:
            raise TypeError(f"until: the condition must be a scalar, got {condition.type}")
        self.condition = condition


def _is_update_pairs(x) -> bool:
    return (isinstance(x, (list, tuple)) and len(x) > 0
            and all(isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], SharedVariable)
                    for p in x))


def _kind(x) -> str:
    if isinstance(x, until):
        return "until"
    if isinstance(x, dict) or _is_update_pairs(x):
        return "updates"
    return "outputs"


def parse_step_return(result):
    """Split what a step returned into (outputs list, updates OrderedDict, condition or None).

    A step may return outputs (a variable or a list), updates (a dict or a list of
    (shared variable, expression) pairs), an ``until``, or a tuple of two or three
    of these in any order.
    """
    parts = {"outputs": None, "updates": None, "until": None}
    if isinstance(result, tuple) and 2 <= len(result) <= 3 and \
            any(_kind(x) != "outputs" for x in result):
        for x in result:
            kind = _kind(x)
            if parts[kind] is not None:
                raise ValueError(f"scan: the step returned two {kind} in {result!r}")
            parts[kind] = x
    elif result is not None:
        parts[_kind(result)] = result
    outputs = parts["outputs"]
    if outputs is None:
        outputs = []
    elif not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    for k, out in enumerate(outputs):
        if out is None:
            raise TypeError(f"scan: output {k} of the step is None; return a tensor")
    updates = parts["updates"] or {}
    pairs = updates.items() if isinstance(updates, dict) else updates
    condition = parts["until"].condition if parts["until"] is not None else None
    return [as_tensor_variable(o) for o in outputs], OrderedDict(pairs), condition
