"""Gradients of Scan: back-propagation through time, as a second Scan running backwards.

Step t of the forward loop maps (sequence rows s_t, past states y[t + k], state h_t
of the 'final' outputs, non-sequences W) to the new states and the stacked rows.
The backward loop visits t = n-1 .. 0 and, at each step, takes the vector-Jacobian
product of the step graph with the cotangents of what step t produced:

- the cotangent of a recurrent output's new state y[t] is its external gradient
  plus what later steps sent back to it. Those contributions are carried in a
  window ``pending`` of the next ``n_back`` states (pending[i] is for y[t - i]):
  after the product, the window shifts by one and adds what step t sends to
  y[t + k] for each tap k. After step 0 it holds the gradient of the initial block.
- the gradient of each non-sequence is summed in an accumulator;
- the gradient of each sequence row is a stacked output of the backward loop.

The backward step recomputes the forward step's intermediate values from the stored
states (the forward loop keeps every state of its 'history' outputs). A 'final'
output whose past states the backward pass needs is recomputed by a copy of the
loop that keeps its history. ``truncate_gradient`` makes the backward loop visit
only the last steps.
"""

from __future__ import annotations

from theanine.gradient import (DisconnectedType, _is_null, grad, grad_undefined_for_discrete,
                               is_disconnected)
from theanine.graph.basic import Constant
from theanine.graph.traversal import clone_replace, graph_inputs
from theanine.scan_module.op import FINAL, HISTORY, STACKED, OutputSpec, Scan, as_history, with_stacked
from theanine.tensor.type import FLOAT_DTYPES, TensorType


def scan_grad(op, inputs, outputs, output_grads):
    """The gradients of a Scan node's inputs, given those of its outputs (``Scan.L_op``)."""
    from theanine.tensor.basic import zeros_like
    connected = [any(row) for row in op.connections(len(inputs))]
    null = next((g for g in output_grads if _is_null(g)), None)
    grads = [None] * len(inputs) if null is not None else \
        _backward(op, inputs, outputs, output_grads)
    result = []
    for i, (x, c, g) in enumerate(zip(inputs, connected, grads)):
        if i == 0 or not c:
            result.append(DisconnectedType()())
        elif x.dtype not in FLOAT_DTYPES:
            result.append(grad_undefined_for_discrete(x))
        elif null is not None:
            result.append(null)
        else:
            result.append(zeros_like(x) if g is None else g)
    return result


def _is_zero(g) -> bool:
    """Whether ``g`` is no gradient at all, or an allocation of zeros."""
    if g is None or is_disconnected(g):
        return True
    from theanine.tensor.basic import Alloc
    if isinstance(g, Constant):
        return not g.data.any()
    node = g.owner
    return (node is not None and isinstance(node.op, Alloc) and isinstance(node.inputs[0], Constant)
            and not node.inputs[0].data.any())


def _is_float(v) -> bool:
    return v.dtype in FLOAT_DTYPES


def _rows(x, start, stop):
    """x[start:stop], last row first."""
    return x[start:stop][::-1]


def _active_outputs(op, external):
    """The outputs whose inner values receive a cotangent: those with an external
    gradient, and the recurrent outputs whose states those read (transitively)."""
    deps = op.inner_dependencies()
    active = {o for o in range(op.n_outs) if external[o] is not None and _is_float(op.inner_outputs[o])}
    while True:
        reads = set().union(*(deps[a] for a in active))
        grown = {o for o, spec in enumerate(op.output_specs)
                 if o not in active and spec.recurrent and _is_float(op.inner_outputs[o])
                 and reads & set(op.state_positions(o))}
        if not grown:
            break
        active |= grown
    reads = set().union(*(deps[a] for a in active))
    read = {o for o, spec in enumerate(op.output_specs) if reads & set(op.state_positions(o))}
    return active, read


def _backward(op, inputs, outputs, output_grads):
    """The gradient of each input (None where it is zero), built as a backward Scan."""
    from theanine.tensor.basic import concatenate, stack, zeros_like
    from theanine.tensor.math import cast, dot, eq, minimum, switch
    from theanine.tensor.shape import shape_i
    from theanine.tensor.subtensor import inc_subtensor, set_subtensor

    external = [None if _is_zero(g) else g for g in output_grads]
    active, read = _active_outputs(op, external)
    grads = [None] * len(inputs)
    if not active:
        return grads

    # Where the states of each recurrent output the backward pass uses are stored.
    taps = {o: op.output_specs[o].taps for o in active | read if op.output_specs[o].recurrent}
    buffers = {o: outputs[o] for o in taps if op.output_specs[o].kind == HISTORY}
    blocks = {o: inputs[op.init_index(o)] for o in buffers}
    external_full = {o: external[o] for o in active}
    finals = sorted(o for o in taps if op.output_specs[o].kind == FINAL)
    if finals:
        hist_inputs = list(inputs)
        for o in finals:
            i = op.init_index(o)
            hist_inputs[i] = inputs[i].dimshuffle("x", *range(inputs[i].ndim))
            blocks[o] = hist_inputs[i]
        hist_outputs = as_history(op, finals).make_node(*hist_inputs).outputs
        for o in finals:
            buffers[o] = hist_outputs[o]
            if external[o] is not None:
                external_full[o] = set_subtensor(zeros_like(buffers[o])[-1], external[o])

    if op.as_while:
        o = min(active)
        n = shape_i(buffers[o], 0) - _n_back(taps[o]) if o in buffers else shape_i(outputs[o], 0)
    else:
        n = cast(inputs[0], "int64")
    if op.truncate_gradient > 0:
        n_back_steps = minimum(op.truncate_gradient, n)
        start = n - n_back_steps
    else:
        n_back_steps, start = n, 0

    # Placeholders of the backward step, and the sequences that feed them.
    replace, seq_phs, seq_outer = {}, [], []

    def add_sequence(inner, rows):
        ph = inner.type(name=inner.name)
        replace[inner] = ph
        seq_phs.append(ph)
        seq_outer.append(rows)
        return ph

    for i in range(op.n_seqs):
        add_sequence(op.inner_inputs[i], _rows(inputs[1 + i], start, n))
    for o in sorted(read):
        mb = _n_back(taps[o])
        for p, k in zip(op.state_positions(o), taps[o]):
            add_sequence(op.inner_inputs[p], _rows(buffers[o], mb + k + start, mb + k + n))
    cotangents, pendings = {}, {}
    for o in sorted(active):
        out = op.inner_outputs[o]
        ct = None
        if external_full[o] is not None:
            g = cast(external_full[o], out.dtype)
            offset = _n_back(taps[o]) if o in taps else 0
            row_t = TensorType(out.dtype, g.type.shape[1:])
            ct = add_sequence(row_t(name=f"d_out{o}[t]"), _rows(g, offset + start, offset + n))
        if o in taps:
            state_t = op.inner_inputs[op.state_positions(o)[0]].type
            pendings[o] = TensorType(out.dtype, (None,) + state_t.shape)(name=f"d_out{o}[pending]")
            ct = pendings[o][0] if ct is None else ct + pendings[o][0]
        cotangents[o] = ct
    first_non_seq = op.n_seqs + op.n_states
    for p in range(first_non_seq, len(op.inner_inputs)):
        x = op.inner_inputs[p]
        replace[x] = x.type(name=x.name)
    for o, rows in _stored_values(op, outputs, buffers, start, n).items():
        out = op.inner_outputs[o]
        if out not in replace:  # the product reads the value the forward step stored
            add_sequence(out, rows)

    # The vector-Jacobian product of the step, in terms of the forward step's inputs.
    known = {}
    for o, ct in cotangents.items():
        out = op.inner_outputs[o]
        known[out] = known[out] + ct if out in known else ct
    wrt = [p for p in range(op.n_seqs) if _is_float(op.inner_inputs[p])]
    wrt += [p for o in sorted(active) if o in taps for p in op.state_positions(o)]
    wrt += [p for p in range(first_non_seq, len(op.inner_inputs)) if _is_float(op.inner_inputs[p])]
    vjp = grad(None, [op.inner_inputs[p] for p in wrt], known_grads=known,
               disconnected_inputs="ignore", return_disconnected="None", null_gradients="return")
    vjp = dict(zip(wrt, vjp))
    null = next((g for g in vjp.values() if _is_null(g)), None)
    if null is not None:
        return [null] * len(inputs)
    products = _recomputed_products(op, [g for g in vjp.values() if g is not None], replace)
    if products and not op.as_while:  # the forward loop stacks them, the backward one reads them
        stored = with_stacked(op, products).make_node(*inputs).outputs[op.n_outs:]
        for var, rows in zip(products, stored):
            add_sequence(var, _rows(rows, start, n))

    step_outputs, specs, carry_phs, carry_inits = [], [], [], []
    for o in sorted(pendings):
        P = pendings[o]
        mb = _n_back(taps[o])
        zero = zeros_like(P[0])
        sent = []
        for back in range(1, mb + 1):
            g = vjp.get(op.state_positions(o)[taps[o].index(-back)]) if -back in taps[o] else None
            sent.append(zero if g is None else cast(g, P.dtype))
        new = stack(sent) if mb > 1 else sent[0].dimshuffle("x", *range(sent[0].ndim))
        if mb > 1:
            new = new + concatenate([P[1:], zeros_like(P[:1])])
        step_outputs.append(new)
        carry_phs.append(P)
        carry_inits.append(zeros_like(blocks[o]))
    accumulated, products = [], {}
    for p in range(first_non_seq, len(op.inner_inputs)):
        if vjp.get(p) is None:
            continue
        products[p], rest = _step_products(vjp[p])
        if rest is None:
            continue
        x = op.inner_inputs[p]
        acc = x.type(name=f"d{x.name}" if x.name else None)
        step_outputs.append(acc + rest)
        carry_phs.append(acc)
        carry_inits.append(zeros_like(inputs[op.non_seq_start + p - first_non_seq]))
        accumulated.append(p)
    specs = [OutputSpec(FINAL, (-1,))] * len(step_outputs)
    seq_grads = [i for i in range(op.n_seqs) if vjp.get(i) is not None]
    step_outputs += [vjp[i] for i in seq_grads]
    # The factors of the products summed over the steps: rows the backward loop reads
    # already, or rows it stacks.
    factors = {v: k for k, v in enumerate(step_outputs) if k >= len(specs)}  # sequence gradients
    for a, b in (pair for pairs in products.values() for pair in pairs):
        for v in (a, b):
            if v not in factors and not (v in replace and replace[v] in seq_phs):
                factors[v] = len(step_outputs)
                step_outputs.append(v)
    specs += [OutputSpec(STACKED)] * (len(step_outputs) - len(specs))
    step_outputs = clone_replace(step_outputs, replace)

    # Only the placeholders the backward step reads become its inputs.
    used = {id(v) for v in graph_inputs(step_outputs)}
    kept = [k for k, ph in enumerate(seq_phs) if id(ph) in used]
    non_seq = [(replace[op.inner_inputs[p]], inputs[op.non_seq_start + p - first_non_seq])
               for p in range(first_non_seq, len(op.inner_inputs))
               if id(replace[op.inner_inputs[p]]) in used]
    back_op = Scan([seq_phs[k] for k in kept] + carry_phs + [ph for ph, _ in non_seq], step_outputs,
                   len(kept), specs, name=f"grad_of_{op.name or 'scan'}", mode=op.mode)
    back = back_op.make_node(n_back_steps, *[seq_outer[k] for k in kept], *carry_inits,
                             *[x for _, x in non_seq]).outputs

    j = 0
    for o in sorted(pendings):
        mb = _n_back(taps[o])
        g_block = back[j][::-1]  # row r of the initial block is the state mb - r steps before 0
        if op.truncate_gradient > 0:
            g_block = switch(eq(start, 0), g_block, zeros_like(g_block))
        if external_full[o] is not None:
            g_block = g_block + cast(external_full[o][:mb], g_block.dtype)
        i = op.init_index(o)
        grads[i] = g_block[0] if op.output_specs[o].kind == FINAL else g_block
        j += 1
    for p in accumulated:
        grads[op.non_seq_start + p - first_non_seq] = back[j]
        j += 1
    for i in seq_grads:
        x = inputs[1 + i]
        grads[1 + i] = inc_subtensor(zeros_like(x)[start:n], back[j][::-1])
        j += 1

    def rows_of(v):
        return back[factors[v]] if v in factors else seq_outer[seq_phs.index(replace[v])]
    for p, pairs in products.items():
        k = op.non_seq_start + p - first_non_seq
        for a, b in pairs:
            A, B = rows_of(a), rows_of(b)  # dot(a.T, b) at every step, as one product
            total = dot(A.reshape((-1, A.shape[2])).T, B.reshape((-1, B.shape[2])))
            grads[k] = total if grads[k] is None else grads[k] + total
        grads[k] = grads[k] if grads[k] is None else cast(grads[k], inputs[k].dtype)
    return grads


def _step_products(g):
    """``(pairs, rest)``: ``g`` as a sum of ``dot(a.T, b)`` terms of matrices ``a`` and ``b``
    (the pairs) and of the other terms (``rest``, None when there are none). Summed over
    the steps, the products become one product of the stacked rows, after the loop:
    one large matrix product instead of one small one per step."""
    from theanine import scalar as ts
    from theanine.rewriting.canonicalize import elemwise_inputs
    from theanine.tensor.elemwise import DimShuffle
    from theanine.tensor.math import Dot

    terms = elemwise_inputs(g, ts.add)
    if terms is None or any(t.type != g.type for t in terms):
        terms = [g]
    pairs, rest = [], []
    for t in terms:
        node = t.owner
        a = node.inputs[0].owner if node is not None and isinstance(node.op, Dot) else None
        if (a is not None and isinstance(a.op, DimShuffle) and tuple(a.op.new_order) == (1, 0)
                and node.inputs[1].ndim == 2 and t.dtype in ("float32", "float64")):
            pairs.append((a.inputs[0], node.inputs[1]))
        else:
            rest.append(t)
    if not pairs:
        return [], g
    total = None
    for t in rest:
        total = t if total is None else total + t
    return pairs, total


def _recomputed_products(op, roots, replace) -> list:
    """The matrix products of the forward step that the backward step (``roots``) would
    compute again: the forward loop can stack their values instead (a few rows per step
    against a product per step)."""
    from theanine.graph.traversal import toposort
    from theanine.tensor.math import Dot
    forward = op.fgraph.apply_nodes
    return [node.outputs[0] for node in toposort(roots, blockers=list(replace))
            if node in forward and isinstance(node.op, Dot) and node.outputs[0] not in replace]


def _stored_values(op, outputs, buffers, start, n) -> dict:
    """For each output whose every step's value the forward pass keeps, the rows of those
    values for steps start..n-1, last first: the backward step reads them instead of
    recomputing them (a tanh's gradient, for one, needs only its output)."""
    rows = {}
    for o, spec in enumerate(op.output_specs):
        if not _is_float(op.inner_outputs[o]):
            continue
        if spec.kind == STACKED:
            rows[o] = _rows(outputs[o], start, n)
        elif o in buffers:  # a history, or the history of a 'final' output recomputed
            mb = _n_back(spec.taps)  # a 'final' output's history has the one tap -1
            rows[o] = _rows(buffers[o], mb + start, mb + n)
    return rows


def _n_back(taps) -> int:
    return -min(taps)
