"""``scan``: Theano's loop construct, from a Python step function to a Scan node."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from theanine.compile.sharedvalue import SharedVariable
from theanine.graph.basic import Constant, Variable
from theanine.graph.traversal import ancestors, clone_replace, graph_inputs
from theanine.scan_module.op import FINAL, HISTORY, STACKED, OutputSpec, Scan, types_compatible
from theanine.scan_module.step import parse_step_return
from theanine.tensor.type import INT_DTYPES, TensorType
from theanine.tensor.variable import as_tensor_variable


def scan(fn, sequences=None, outputs_info=None, non_sequences=None, n_steps=None,
         truncate_gradient=-1, go_backwards=False, mode=None, name=None, strict=False,
         return_list=False):
    """Apply ``fn`` repeatedly, threading states through the steps; returns (outputs, updates).

    At each step ``fn`` receives, in order: the current row of each sequence (one
    argument per tap), the past values of each recurrent output (one per tap), then
    the non-sequences. It returns its outputs, and optionally updates of shared
    variables (a dict) and/or an ``until(condition)``, in a tuple.

    - ``sequences``: tensors iterated over their first dimension, or dicts
      ``{'input': x, 'taps': [-1, 0, 1]}`` (tap k gives x[t + k]).
    - ``outputs_info``: one entry per output: None (not recurrent), an initial state
      (tap -1), or ``{'initial': x0, 'taps': [-2, -1]}`` where x0 holds the first
      ``max(-taps)`` states.
    - ``non_sequences``: values passed unchanged to every step. Shared variables and
      other variables ``fn`` uses without receiving them are passed implicitly
      (``strict=True`` forbids that).
    - ``n_steps``: the number of steps (an int or an integer scalar); without it,
      the length of the shortest sequence.
    - ``go_backwards``: iterate the sequences from their end.
    - ``truncate_gradient``: back-propagate through at most this many steps (-1: all).
    - ``mode``: the compilation mode of the step (None: ``config.mode``).

    Each output is a tensor with one row per step (a single output is returned
    alone unless ``return_list``); ``updates`` is an OrderedDict {shared variable:
    value after the loop} to pass to ``theanine.function(..., updates=updates)``.
    """
    seqs = _normalize_sequences(sequences)
    outs_info = _normalize_outputs_info(outputs_info)
    non_seqs = [x if isinstance(x, Variable) else as_tensor_variable(x) for x in _as_list(non_sequences)]
    if truncate_gradient != -1 and (not isinstance(truncate_gradient, (int, np.integer))
                                    or truncate_gradient <= 0):
        raise ValueError(f"scan: truncate_gradient must be -1 (no truncation) or a positive number "
                         f"of steps, got {truncate_gradient!r}")
    n = _number_of_steps(seqs, n_steps)
    seq_args, outer_seqs = _sequence_slots(seqs, n, n_steps is not None, go_backwards)
    specs, state_args, blocks = _state_slots(outs_info)
    non_seq_args = [x if isinstance(x, (SharedVariable, Constant)) else x.type(name=x.name)
                    for x in non_seqs]

    args = seq_args + [a for group in state_args for a in group] + non_seq_args
    outputs, updates, condition = parse_step_return(fn(*args))
    if outs_info and len(outputs) != len(outs_info):
        raise ValueError(f"scan: fn returned {len(outputs)} outputs but outputs_info has "
                         f"{len(outs_info)} entries; give one entry per output (None for outputs "
                         "that are not recurrent)")
    if not outs_info:
        specs = [OutputSpec(STACKED)] * len(outputs)
    _check_output_types(outputs, specs, state_args, outs_info)
    updates = _with_default_updates(_check_updates(updates), outputs, condition)
    states = list(updates)
    roots = outputs + [updates[v] for v in states] + ([condition] if condition is not None else [])
    replace, non_seq_slots, implicit = _close_step(roots, args, states, non_seqs, non_seq_args, strict)

    inner_inputs = (seq_args + [a for group in state_args for a in group] + [replace[v] for v in states]
                    + [inner for inner, _ in non_seq_slots] + [replace[v] for v in implicit])
    specs = specs + [OutputSpec(FINAL, (-1,))] * len(states)
    op = Scan(inner_inputs, clone_replace(roots, replace), len(seq_args), specs,
              as_while=condition is not None, name=name, mode=mode, truncate_gradient=truncate_gradient)
    node = op.make_node(n, *outer_seqs, *blocks, *states, *[outer for _, outer in non_seq_slots],
                        *implicit)
    results = []
    for o in range(len(outputs)):
        out = node.outputs[o]
        results.append(out[specs[o].n_back:] if specs[o].kind == HISTORY else out)
    new_updates = OrderedDict((v, node.outputs[len(outputs) + j]) for j, v in enumerate(states))
    if return_list:
        return results, new_updates
    if not results:
        return None, new_updates
    return (results[0] if len(results) == 1 else results), new_updates


def _sequence_slots(seqs, n, truncate, go_backwards):
    """The step's sequence arguments (one per tap) and the rows that feed each of them."""
    seq_args, outer_seqs = [], []
    n_slices = sum(len(taps) for _, taps in seqs)
    for x, taps in seqs:
        lo, hi = min(min(taps), 0), max(max(taps), 0)
        for k in taps:
            rows = _tap_rows(x, k, lo, hi)
            if truncate or n_slices > 1:
                rows = rows[:n]
            if go_backwards:
                rows = rows[::-1]
            outer_seqs.append(rows)
            seq_args.append(TensorType(x.dtype, x.type.shape[1:])(name=_tap_name(x.name, k)))
    return seq_args, outer_seqs


def _state_slots(outs_info):
    """Per output its spec; per recurrent output its state arguments (one per tap) and
    its block of initial states."""
    specs, state_args, blocks = [], [], []
    for o, (init, taps) in enumerate(outs_info):
        if init is None:
            specs.append(OutputSpec(STACKED))
            continue
        if taps == (-1,):
            state_type, block = init.type, init.dimshuffle("x", *range(init.ndim))
        else:
            if init.ndim == 0:
                raise TypeError(f"scan: outputs_info[{o}] has taps {list(taps)}, so its initial value "
                                "must hold the first states along dimension 0; got a scalar")
            state_type, block = TensorType(init.dtype, init.type.shape[1:]), init[:-min(taps)]
        specs.append(OutputSpec(HISTORY, taps))
        state_args.append([state_type(name=_tap_name(init.name, k)) for k in taps])
        blocks.append(block)
    return specs, state_args, blocks


def _close_step(roots, args, states, non_seqs, non_seq_args, strict):
    """Make the step graph self-contained: every variable it uses that is not one of its
    arguments gets an inner input.

    Returns ``replace`` ({outer variable: inner input}, covering the updated shared
    variables ``states``), the non-sequence slots [(inner input, outer value)], and
    the variables passed implicitly (shared variables and others ``fn`` used).
    """
    given = {id(a) for a in args}
    if strict:
        for v in states:
            if id(v) not in given:
                raise ValueError(f"scan (strict=True): fn updates the shared variable {v}, which is "
                                 "not among the non_sequences; pass it in non_sequences")
    replace = {v: v.type(name=v.name) for v in states}
    slots = []
    for x, a in zip(non_seqs, non_seq_args):
        if isinstance(a, Constant) or a in replace:
            continue  # constants stay in the step; updated (or repeated) shared variables have a slot
        if isinstance(a, SharedVariable):
            replace[a] = a.type(name=a.name)
            a = replace[a]
        slots.append((a, x))
    own_args = {id(x): a for x, a in zip(non_seqs, non_seq_args) if a is not x}
    implicit = []
    for v in graph_inputs(roots):
        if isinstance(v, Constant) or v in replace or id(v) in given:
            continue
        if id(v) in own_args:  # fn used a non-sequence it was given through its closure
            replace[v] = own_args[id(v)]
            continue
        if strict:
            raise ValueError(f"scan (strict=True): fn uses {v} ({v.type}), which is not among the "
                             "sequences, outputs_info or non_sequences; pass it in non_sequences")
        replace[v] = v.type(name=v.name)
        implicit.append(v)
    return replace, slots, implicit


def _as_list(x):
    if x is None:
        return []
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _normalize_sequences(sequences):
    out = []
    for i, s in enumerate(_as_list(sequences)):
        taps = (0,)
        if isinstance(s, dict):
            unknown = set(s) - {"input", "taps"}
            if unknown or "input" not in s:
                raise ValueError(f"scan: sequences[{i}] must have the keys 'input' and optionally "
                                 f"'taps', got {sorted(s)}")
            taps = _taps(s.get("taps", [0]), f"sequences[{i}]")
            s = s["input"]
        x = as_tensor_variable(s)
        if x.ndim == 0:
            raise TypeError(f"scan: sequences[{i}] ({x}) is a scalar; sequences are iterated over "
                            "their first dimension")
        out.append((x, taps))
    return out


def _normalize_outputs_info(outputs_info):
    out = []
    for i, info in enumerate(_as_list(outputs_info)):
        taps = (-1,)
        if isinstance(info, dict):
            unknown = set(info) - {"initial", "taps"}
            if unknown:
                raise ValueError(f"scan: outputs_info[{i}] has unknown keys {sorted(unknown)}; "
                                 "expected 'initial' and 'taps'")
            if info.get("initial") is None:
                if info.get("taps"):
                    raise ValueError(f"scan: outputs_info[{i}] has taps but no initial value")
                out.append((None, ()))
                continue
            taps = _taps(info.get("taps", [-1]), f"outputs_info[{i}]")
            if any(k >= 0 for k in taps):
                raise ValueError(f"scan: the taps of outputs_info[{i}] must be negative (past "
                                 f"steps), got {list(taps)}")
            info = info["initial"]
        out.append((None, ()) if info is None else (as_tensor_variable(info), taps))
    return out


def _taps(taps, where):
    taps = tuple(taps) if isinstance(taps, (list, tuple)) else (taps,)
    if not taps or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in taps):
        raise ValueError(f"scan: the taps of {where} must be a non-empty list of ints, got {taps!r}")
    if len(set(taps)) != len(taps):
        raise ValueError(f"scan: the taps of {where} repeat an offset: {list(taps)}")
    return tuple(int(k) for k in taps)


def _tap_name(name, k):
    if name is None:
        return None
    return f"{name}[t{k:+d}]" if k else f"{name}[t]"


def _tap_rows(x, k, lo, hi):
    """The rows x[t + k] for the steps t, given the sequence's taps span [lo, hi]."""
    start, stop = k - lo, k - hi
    if start == 0 and stop == 0:
        return x
    return x[start:stop if stop else None]


def _number_of_steps(seqs, n_steps):
    from theanine.tensor.math import cast, maximum, minimum
    from theanine.tensor.shape import shape_i
    if n_steps is None:
        if not seqs:
            raise ValueError("scan: n_steps must be given when there are no sequences (nothing "
                             "else says how many steps to run)")
        n = None
        for x, taps in seqs:
            span = max(max(taps), 0) - min(min(taps), 0)
            length = shape_i(x, 0) if not span else maximum(shape_i(x, 0) - span, 0)
            n = length if n is None else minimum(n, length)
        return cast(n, "int64")
    if isinstance(n_steps, (int, np.integer)) and not isinstance(n_steps, bool):
        if n_steps < 0:
            raise ValueError(f"scan: n_steps must be non-negative, got {n_steps}")
        return as_tensor_variable(np.int64(n_steps))
    n = as_tensor_variable(n_steps)
    if n.ndim != 0 or n.dtype not in INT_DTYPES:
        raise TypeError(f"scan: n_steps must be an integer scalar, got {n_steps!r} ({n.type})")
    return cast(n, "int64")


def _check_output_types(outputs, specs, state_args, outs_info):
    states = iter(state_args)
    for o, (out, spec) in enumerate(zip(outputs, specs)):
        if spec.kind != HISTORY:
            continue
        state = next(states)[0]
        if not types_compatible(state.type, out.type):
            label = f"output {o}" + (f" ({out.name})" if out.name else "")
            init = outs_info[o][0]
            raise TypeError(
                f"scan: {label} of fn has type {out.type}, but its initial state outputs_info[{o}]"
                f"{f' ({init.name})' if init.name else ''} has type {state.type}; a recurrent "
                f"output must have the type of its state (expected {state.type}, given "
                f"{out.type}): cast one of them")


def _check_updates(updates):
    checked = OrderedDict()
    for var, expr in updates.items():
        if not isinstance(var, SharedVariable):
            raise TypeError(f"scan: the step returned an update of {var}, which is not a shared "
                            "variable")
        expr = as_tensor_variable(expr)
        if expr.dtype != var.dtype or expr.ndim != var.ndim:
            raise TypeError(f"scan: the update of {var} has type {expr.type}, but {var} has type "
                            f"{var.type}; cast the update expression")
        checked[var] = expr
    return checked


def _with_default_updates(updates, outputs, condition):
    """Add the default updates of the shared variables the step uses (random states, ...)."""
    roots = outputs + list(updates.values()) + ([condition] if condition is not None else [])
    seen = set()
    while True:
        new = [v for v in ancestors(roots) if isinstance(v, SharedVariable) and v not in updates
               and v.default_update is not None and id(v) not in seen]
        if not new:
            return updates
        for v in new:
            seen.add(id(v))
            updates[v] = as_tensor_variable(v.default_update)
            roots.append(updates[v])
