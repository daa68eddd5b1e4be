"""map, reduce, foldl and foldr: common loops written with scan (Theano's signatures)."""

from __future__ import annotations

from theanine.scan_module.builder import scan


def map(fn, sequences, non_sequences=None, truncate_gradient=-1, go_backwards=False,  # noqa: A001
        mode=None, name=None):
    """Apply ``fn`` to each row of the sequences; returns (outputs, updates)."""
    return scan(fn, sequences=sequences, outputs_info=None, non_sequences=non_sequences,
                truncate_gradient=truncate_gradient, go_backwards=go_backwards, mode=mode, name=name)


def reduce(fn, sequences, outputs_info, non_sequences=None, go_backwards=False, mode=None,  # noqa: A001
           name=None):
    """Fold ``fn`` over the sequences, keeping only the last value of each output;
    returns (outputs, updates)."""
    outputs, updates = scan(fn, sequences=sequences, outputs_info=outputs_info,
                            non_sequences=non_sequences, go_backwards=go_backwards, mode=mode,
                            name=name)
    if isinstance(outputs, (list, tuple)):
        return [out[-1] for out in outputs], updates
    return outputs[-1], updates


def foldl(fn, sequences, outputs_info, non_sequences=None, mode=None, name=None):
    """reduce from the first row of the sequences to the last; returns (outputs, updates)."""
    return reduce(fn, sequences, outputs_info, non_sequences=non_sequences, go_backwards=False,
                  mode=mode, name=name)


def foldr(fn, sequences, outputs_info, non_sequences=None, mode=None, name=None):
    """reduce from the last row of the sequences to the first; returns (outputs, updates)."""
    return reduce(fn, sequences, outputs_info, non_sequences=non_sequences, go_backwards=True,
                  mode=mode, name=name)
