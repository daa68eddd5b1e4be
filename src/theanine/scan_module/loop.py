"""The loop a Scan node runs: one call of the compiled step per step, in Python.

Recurrent outputs are written into buffers allocated once, before the first
step; stacked outputs into an array allocated after the first step (when the
shape of a row is known). No list of per-step arrays is ever concatenated.

The arrays are NumPy's (``HOST``), or those of another memory with the same few
operations (``Memory``): mode 'cuda' runs the loop over device arrays, its step
reading rows of the device buffers in place.
"""

from __future__ import annotations

import numpy as np

from theanine.scan_module.op import FINAL, HISTORY, STACKED


class Memory:
    """The array operations the loop needs, on NumPy arrays."""

    def empty(self, shape, dtype):
        """A new array, values undefined."""
        return np.empty(shape, dtype=dtype)

    def row(self, array, t):
        """``array[t]`` as an array (a view), 0-d for a vector's entry."""
        return array[t, ...]

    def head(self, array, n):
        """``array[:n]`` (a view)."""
        return array[:n]

    def store(self, array, t, value):
        """``array[t] = value``, or ``array[:n] = value`` for ``t`` a slice."""
        array[t] = value

    def final(self, value, dtype):
        """A final state as the output's value."""
        return np.asarray(value, dtype=dtype)

    def truth(self, value) -> bool:
        """A stop condition's value, read on the host."""
        return bool(value)


HOST = Memory()


def run_loop(op, step, inputs, out_dtypes, memory=HOST):
    """Run ``op``'s loop on the node's input values (arrays of ``memory``); returns one
    value per output."""
    n = int(inputs[0])
    if n < 0:
        raise ValueError(f"{op}: the number of steps must be non-negative, got {n}")
    seqs = inputs[1:1 + op.n_seqs]
    for i, s in enumerate(seqs):
        if s.shape[0] < n:
            raise ValueError(f"{op}: sequence {i} has {s.shape[0]} entries, fewer than the {n} steps "
                             "to run")
    args = [None] * len(op.inner_inputs)
    first_non_seq = op.n_seqs + op.n_states
    args[first_non_seq:] = inputs[op.non_seq_start:]
    buffers = [None] * op.n_outs   # history and stacked outputs
    finals = [None] * op.n_outs    # the current state of final outputs
    tap_slots, final_slots = [], []
    for o, spec in enumerate(op.output_specs):
        if spec.kind == STACKED:
            continue
        init = inputs[op.init_index(o)]
        positions = op.state_positions(o)
        if spec.kind == FINAL:
            finals[o] = init
            final_slots.append((positions[0], o))
            continue
        mb = spec.n_back
        if init.shape[0] != mb:
            raise ValueError(f"{op}: output {o} reads {mb} past states, but its initial block has "
                             f"{init.shape[0]} rows (shape {init.shape})")
        buf = memory.empty((mb + n,) + init.shape[1:], out_dtypes[o])
        memory.store(buf, slice(0, mb), init)
        buffers[o] = buf
        tap_slots.extend((p, buf, mb + k) for p, k in zip(positions, spec.taps))
    seq_slots = list(enumerate(seqs))
    kinds = [spec.kind for spec in op.output_specs]
    n_outs, as_while = op.n_outs, op.as_while

    n_run = n
    for t in range(n):
        # [t, ...] gives a 0-d array for a row of a vector, where [t] would give a NumPy scalar
        for a, s in seq_slots:
            args[a] = memory.row(s, t)
        for a, buf, offset in tap_slots:
            args[a] = memory.row(buf, t + offset)
        for a, o in final_slots:
            args[a] = finals[o]
        outs = step(*args)
        for o in range(n_outs):
            value, kind = outs[o], kinds[o]
            if kind == HISTORY:
                row = t + op.output_specs[o].n_back
                buf = buffers[o]
                if value.shape != buf.shape[1:]:
                    raise ValueError(f"{op}: at step {t}, output {o} has shape {value.shape}, but its "
                                     f"state has shape {buf.shape[1:]}; a recurrent output must keep "
                                     "the shape of its initial state")
                memory.store(buf, row, value)
            elif kind == STACKED:
                buf = buffers[o]
                if buf is None:
                    buf = buffers[o] = memory.empty((n,) + value.shape, out_dtypes[o])
                elif value.shape != buf.shape[1:]:
                    raise ValueError(f"{op}: at step {t}, output {o} has shape {value.shape}, but it "
                                     f"had shape {buf.shape[1:]} at step 0; every step must give the "
                                     "same shape")
                memory.store(buf, t, value)
            else:
                if value.shape != finals[o].shape:
                    raise ValueError(f"{op}: at step {t}, output {o} has shape {value.shape}, but its "
                                     f"state has shape {finals[o].shape}; a state must keep its shape")
                finals[o] = value
        if as_while and memory.truth(outs[n_outs]):
            n_run = t + 1
            break

    results = []
    for o, spec in enumerate(op.output_specs):
        if spec.kind == HISTORY:
            results.append(memory.head(buffers[o], spec.n_back + n_run))
        elif spec.kind == FINAL:
            results.append(memory.final(finals[o], out_dtypes[o]))
        elif buffers[o] is not None:
            results.append(memory.head(buffers[o], n_run))
        else:
            row = _row_shape(op, step, args, inputs, o, memory)
            results.append(memory.empty((0,) + row, out_dtypes[o]))
    return results


def _row_shape(op, step, args, inputs, o, memory):
    """The shape of one row of stacked output ``o`` when no step ran.

    The step is run once on rows of zeros (and the initial states) just to read the
    shape it gives; if that fails, the dimensions unknown statically are taken as 0.
    """
    trial = list(args)
    for i, s in enumerate(inputs[1:1 + op.n_seqs]):
        trial[i] = np.zeros(s.shape[1:], dtype=s.dtype)
    for o2, spec in enumerate(op.output_specs):
        init = inputs[op.init_index(o2)] if spec.recurrent else None
        for p, k in zip(op.state_positions(o2), spec.taps):
            trial[p] = init if spec.kind == FINAL else memory.row(init, spec.n_back + k)
    try:
        with np.errstate(all="ignore"):
            return tuple(step(*trial)[o].shape)
    except Exception:  # only the shape of an empty result depends on it
        return tuple(0 if d is None else d for d in op.inner_outputs[o].type.shape)
