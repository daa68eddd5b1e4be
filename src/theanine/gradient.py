"""Symbolic differentiation: grad, Lop, Rop, jacobian, hessian, verify_grad.

Reverse mode walks the graph once, from the cost back to the inputs, in
reverse topological order (no recursion), asking each op for its
vector-Jacobian product (``Op.L_op``) and summing the contributions.
"""

from __future__ import annotations

import warnings

import numpy as np

from theanine.configparser import config
from theanine.graph.basic import Apply, Op, Type, Variable
from theanine.graph.traversal import clone_replace, graph_inputs, toposort
from theanine.tensor.type import COMPLEX_DTYPES, DISCRETE_DTYPES, FLOAT_DTYPES


class DisconnectedType(Type):
    """The type of a gradient that does not exist because an output does not depend on an input."""

    def filter(self, value, strict=False, allow_downcast=None):
        raise TypeError("a disconnected gradient has no value")

    def __eq__(self, other):
        return type(self) is type(other)

    def __hash__(self):
        return hash(DisconnectedType)

    def __str__(self):
        return "Disconnected"


class NullType(Type):
    """The type of a gradient that is undefined or not implemented; ``why`` says which."""

    is_null = True

    def __init__(self, why):
        self.why = why

    def filter(self, value, strict=False, allow_downcast=None):
        raise TypeError(f"an undefined gradient has no value: {self.why}")

    def __eq__(self, other):
        return type(self) is type(other) and self.why == other.why

    def __hash__(self):
        return hash((NullType, self.why))

    def __str__(self):
        return "NullType"


class DisconnectedInputError(ValueError):
    """The cost does not depend on one of the variables the gradient was asked for."""


class NullTypeGradError(TypeError):
    """A gradient that was asked for is undefined or not implemented."""


class GradientError(ValueError):
    """verify_grad found a symbolic gradient that disagrees with finite differences."""

    def __init__(self, arg, abs_err, rel_err, abs_tol, rel_tol, analytic=None, numeric=None):
        self.arg, self.abs_err, self.rel_err = arg, abs_err, rel_err
        self.abs_tol, self.rel_tol = abs_tol, rel_tol
        self.analytic, self.numeric = analytic, numeric
        super().__init__(
            f"gradient of input {arg} disagrees with finite differences: max abs error {abs_err:.3g} "
            f"(tolerance {abs_tol:.3g}), max rel error {rel_err:.3g} (tolerance {rel_tol:.3g})")


def is_disconnected(g) -> bool:
    return g is None or isinstance(getattr(g, "type", None), DisconnectedType)


def _is_null(g) -> bool:
    return isinstance(getattr(g, "type", None), NullType)


def grad_not_implemented(op, index, x, comment=""):
    """The placeholder an op returns for a gradient it does not implement."""
    why = f"the gradient of {op} with respect to its input {index} is not implemented"
    return NullType(why + (f": {comment}" if comment else ""))()


def grad_undefined(op, index, x, comment=""):
    """The placeholder an op returns for a gradient that is mathematically undefined."""
    why = f"the gradient of {op} with respect to its input {index} is undefined"
    return NullType(why + (f": {comment}" if comment else ""))()


def grad_undefined_for_discrete(x):
    """Gradient through a piecewise-constant dependency: zero (in floatX for integer x)."""
    from theanine.tensor.basic import zeros_like
    dtype = x.dtype if x.dtype in FLOAT_DTYPES + COMPLEX_DTYPES else config.floatX
    return zeros_like(x, dtype=dtype)


def _as_list(x):
    return (list(x), True) if isinstance(x, (list, tuple)) else ([x], False)


def _zeros_for(v):
    from theanine.tensor.basic import zeros_like
    return zeros_like(v, dtype=v.dtype if v.dtype in FLOAT_DTYPES + COMPLEX_DTYPES else config.floatX)


def _check_grad_type(node, i, inp, g):
    from theanine.tensor.math import cast
    from theanine.tensor.variable import as_tensor_variable
    g = as_tensor_variable(g)
    if g.ndim != inp.ndim:
        raise TypeError(f"{node.op}.L_op returned a gradient with {g.ndim} dimensions for input {i}, "
                        f"which has {inp.ndim} ({inp.type})")
    if inp.dtype in FLOAT_DTYPES + COMPLEX_DTYPES and g.dtype != inp.dtype:
        g = cast(g, inp.dtype)
    return g


def grad(cost, wrt, consider_constant=None, disconnected_inputs="raise", add_names=True,
         known_grads=None, return_disconnected="zero", null_gradients="raise"):
    """Gradients of the scalar ``cost`` with respect to ``wrt`` (a variable or a list).

    - ``consider_constant``: variables treated as constants (no gradient flows through them).
    - ``known_grads``: {variable: gradient} to start from (then ``cost`` may be None).
    - ``disconnected_inputs``: 'raise', 'warn' or 'ignore' when cost does not depend on a wrt.
    - ``return_disconnected``: 'zero', 'None' or 'Disconnected' for those.
    """
    from theanine.tensor.basic import ones_like
    from theanine.tensor.math import add
    from theanine.tensor.variable import as_tensor_variable

    wrt_list, was_list = _as_list(wrt)
    for i, w in enumerate(wrt_list):
        if not isinstance(w, Variable):
            raise TypeError(f"grad: wrt[{i}] must be a symbolic variable, got {type(w).__name__}")
    if disconnected_inputs not in ("raise", "warn", "ignore"):
        raise ValueError(f"grad: disconnected_inputs must be 'raise', 'warn' or 'ignore', got {disconnected_inputs!r}")
    if return_disconnected not in ("zero", "None", "Disconnected"):
        raise ValueError(f"grad: return_disconnected must be 'zero', 'None' or 'Disconnected', got {return_disconnected!r}")
    known_grads = dict(known_grads or {})
    if cost is None and not known_grads:
        raise ValueError("grad: give a cost, or known_grads")
    seeds = {}
    if cost is not None:
        cost = as_tensor_variable(cost)
        if cost.ndim != 0:
            raise TypeError(f"grad: cost must be a scalar, got a tensor with {cost.ndim} dimensions "
                            f"({cost.type}); sum or average it first, or use jacobian/Lop")
        if cost.dtype in DISCRETE_DTYPES:
            raise TypeError(f"grad: cost has the discrete dtype {cost.dtype}; it is not differentiable")
        seeds[cost] = ones_like(cost)
    for v, g in known_grads.items():
        g = as_tensor_variable(g)
        if g.ndim != v.ndim:
            raise ValueError(f"grad: known gradient for {v} has {g.ndim} dimensions, expected {v.ndim}")
        seeds[v] = g

    blockers = set(consider_constant or [])
    wrt_set = set(wrt_list)
    roots = list(seeds)
    nodes = toposort(roots, blockers=list(blockers))
    # Which variables depend on some wrt (only those need gradients).
    depends = set(wrt_set)
    for node in nodes:
        if any(i in depends for i in node.inputs):
            depends.update(node.outputs)
    contributions: dict[Variable, list] = {v: [g] for v, g in seeds.items()}
    for node in reversed(nodes):
        if not any(o in contributions for o in node.outputs):
            continue
        if not any(i in depends for i in node.inputs):
            continue
        out_grads = []
        for o in node.outputs:
            gs = contributions.get(o)
            if not gs or o.dtype in DISCRETE_DTYPES:
                out_grads.append(_zeros_for(o))
            else:
                out_grads.append(gs[0] if len(gs) == 1 else add(*gs))
                contributions[o] = [out_grads[-1]]
        in_grads = node.op.L_op(node.inputs, node.outputs, out_grads)
        if len(in_grads) != len(node.inputs):
            raise ValueError(f"{node.op}.L_op returned {len(in_grads)} gradients for {len(node.inputs)} inputs")
        pattern = node.op.connection_pattern(node)
        for i, (inp, g) in enumerate(zip(node.inputs, in_grads)):
            if inp not in depends or inp in blockers or not any(pattern[i]) or is_disconnected(g):
                continue
            if _is_null(g):
                contributions.setdefault(inp, []).append(g)
                continue
            contributions.setdefault(inp, []).append(_check_grad_type(node, i, inp, g))

    results = []
    for w in wrt_list:
        gs = [g for g in contributions.get(w, []) if g is not None]
        nulls = [g for g in gs if _is_null(g)]
        if nulls:
            if null_gradients == "raise":
                raise NullTypeGradError(f"grad: cannot compute the gradient with respect to {w}: "
                                        f"{nulls[0].type.why}")
            results.append(nulls[0])
            continue
        if not gs:
            if w in seeds:
                results.append(seeds[w])
                continue
            msg = (f"grad: the cost does not depend on {w} ({w.type}); pass "
                   f"disconnected_inputs='ignore' if this is expected")
            if disconnected_inputs == "raise":
                raise DisconnectedInputError(msg)
            if disconnected_inputs == "warn":
                warnings.warn(msg, stacklevel=2)
            if return_disconnected == "zero":
                results.append(_zeros_for(w))
            elif return_disconnected == "None":
                results.append(None)
            else:
                results.append(DisconnectedType()())
            continue
        g = gs[0] if len(gs) == 1 else add(*gs)
        if w.dtype in DISCRETE_DTYPES:
            g = _zeros_for(w)
        if add_names and g.name is None and w.name:
            g.name = f"(d{cost.name if cost is not None and cost.name else 'cost'}/d{w.name})"
        results.append(g)
    return results if was_list else results[0]


def Lop(f, wrt, eval_points, consider_constant=None, disconnected_inputs="raise"):
    """Vector-Jacobian products: sum_j eval_points[j] * d f[j] / d wrt, for each wrt."""
    fs, _ = _as_list(f)
    evs, _ = _as_list(eval_points)
    if len(fs) != len(evs):
        raise ValueError(f"Lop: {len(fs)} outputs but {len(evs)} eval points")
    known = dict(zip(fs, evs))
    return grad(None, wrt, consider_constant=consider_constant, known_grads=known,
                disconnected_inputs=disconnected_inputs)


def Rop(f, wrt, eval_points, disconnected_outputs="raise", return_disconnected="zero"):
    """Jacobian-vector products: sum_i d f / d wrt[i] * eval_points[i], for each f.

    Computed by transposing a vector-Jacobian product (the "double Lop" identity),
    so every op with a gradient has an R-operator.
    """
    from theanine.tensor.variable import as_tensor_variable
    fs, f_list = _as_list(f)
    wrts, _ = _as_list(wrt)
    evs, _ = _as_list(eval_points)
    if len(wrts) != len(evs):
        raise ValueError(f"Rop: {len(wrts)} wrt variables but {len(evs)} eval points")
    evs = [as_tensor_variable(e) for e in evs]
    for w, e in zip(wrts, evs):
        if w.ndim != e.ndim:
            raise ValueError(f"Rop: eval point for {w} has {e.ndim} dimensions, expected {w.ndim}")
    results = []
    for fi in fs:
        u = fi.type(name="rop_u")
        gs = grad(None, wrts, known_grads={fi: u}, disconnected_inputs="ignore",
                  return_disconnected="None")
        pairs = [(g, e) for g, e in zip(gs, evs) if g is not None]
        if not pairs:
            if disconnected_outputs == "raise":
                raise DisconnectedInputError(f"Rop: output {fi} does not depend on wrt")
            results.append(_zeros_for(fi) if return_disconnected == "zero" else None)
            continue
        jvp = grad(None, u, known_grads=dict(pairs), disconnected_inputs="ignore")
        # jvp is linear in u and so independent of its value, but it may still read u's
        # shape: give it a u of the right shape so that u is not an input of the result.
        results.append(clone_replace(jvp, {u: _zeros_for(fi)}))
    return results if f_list else results[0]


class ScalarGradOp(Op):
    """Identity in the forward pass with a modified gradient (zero, none, clipped, scaled)."""

    __props__ = ("mode", "lo", "hi")

    def __init__(self, mode, lo=None, hi=None):
        self.mode, self.lo, self.hi = mode, lo, hi

    def __str__(self):
        return {"zero": "ZeroGrad", "disconnected": "DisconnectedGrad", "clip": "GradClip",
                "scale": "GradScale"}[self.mode]

    def make_node(self, x):
        from theanine.tensor.variable import as_tensor_variable
        x = as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, output_storage):
        output_storage[0][0] = inputs[0]

    def infer_shape(self, fgraph, node, shapes):
        return shapes

    def L_op(self, inputs, outputs, output_grads):
        from theanine.tensor.math import clip
        (gz,) = output_grads
        if self.mode == "zero":
            return [_zeros_for(inputs[0])]
        if self.mode == "disconnected":
            return [DisconnectedType()()]
        if self.mode == "clip":
            return [clip(gz, self.lo, self.hi)]
        return [gz * self.lo]

    def connection_pattern(self, node):
        return [[self.mode != "disconnected"]]


def zero_grad(x):
    """x in the forward pass; its gradient is zero (x is treated as a constant)."""
    return ScalarGradOp("zero")(x)


def disconnected_grad(x):
    """x in the forward pass; gradients do not flow through it at all."""
    return ScalarGradOp("disconnected")(x)


def grad_clip(x, lower_bound, upper_bound):
    """x in the forward pass; the gradient flowing back through it is clipped to the bounds."""
    if lower_bound > upper_bound:
        raise ValueError(f"grad_clip: lower_bound {lower_bound} > upper_bound {upper_bound}")
    return ScalarGradOp("clip", float(lower_bound), float(upper_bound))(x)


def grad_scale(x, multiplier):
    """x in the forward pass; the gradient flowing back through it is multiplied by ``multiplier``."""
    return ScalarGradOp("scale", float(multiplier))(x)


consider_constant = zero_grad


class IndexMap(Op):
    """Stacks an inner graph evaluated at i = 0 .. n-1 (used for Jacobians of any length).

    ``inner_inputs`` are ``[i] + free variables``; the node's inputs are ``[n, like] + free
    variables``, where ``like`` has the shape of one row (so that no rows have a shape
    too); the inner graph runs on the reference executor.
    """

    __props__ = ("inner_output",)

    def __init__(self, index_var, inner_inputs, inner_output):
        self.index_var = index_var
        self.inner_inputs = inner_inputs
        self.inner_output = inner_output
        self._runner = None

    def make_node(self, n, like, *free):
        from theanine.tensor.type import TensorType
        out = self.inner_output
        return Apply(self, [n, like] + list(free), [TensorType(out.dtype, (None,) + out.type.shape)()])

    def perform(self, node, inputs, output_storage):
        from theanine.compile.executor import GraphRunner
        if self._runner is None:
            self._runner = GraphRunner([self.index_var] + self.inner_inputs, [self.inner_output])
        n, like, *free = inputs
        rows = [self._runner(np.asarray(i, dtype=self.index_var.dtype), *free)[0] for i in range(int(n))]
        out_t = node.outputs[0].type
        if rows:
            output_storage[0][0] = np.stack(rows).astype(out_t.dtype, copy=False)
        else:
            output_storage[0][0] = np.zeros((0,) + np.shape(like), dtype=out_t.dtype)


def jacobian(expression, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The Jacobian of a vector (or scalar) ``expression`` with respect to ``wrt``.

    For each wrt of shape S the result has shape (len(expression),) + S.
    """
    from theanine.tensor.basic import stack
    from theanine.tensor.math import cast
    from theanine.tensor.shape import shape_i
    from theanine.tensor.type import TensorType
    from theanine.tensor.variable import as_tensor_variable
    expression = as_tensor_variable(expression)
    wrts, was_list = _as_list(wrt)
    if expression.ndim == 0:
        out = grad(expression, wrts, consider_constant, disconnected_inputs)
        return out if was_list else out[0]
    if expression.ndim != 1:
        raise TypeError(f"jacobian: expression must be a vector or a scalar, got {expression.ndim} dimensions")
    n = expression.type.shape[0]
    results = []
    if n is not None and 0 < n <= 64:
        rows = [grad(expression[i], wrts, consider_constant, disconnected_inputs) for i in range(n)]
        results = [stack([r[k] for r in rows]) for k in range(len(wrts))]
        return results if was_list else results[0]
    index = TensorType("int64", ())(name="jacobian_i")
    row_grads = grad(expression[index], wrts, consider_constant, disconnected_inputs)
    for g, w in zip(row_grads, wrts):  # a row of the Jacobian has the shape of its wrt
        free = [v for v in graph_inputs([g]) if v is not index and not hasattr(v, "data")]
        op = IndexMap(index, free, g)
        results.append(op(cast(shape_i(expression, 0), "int64"), w, *free))
    return results if was_list else results[0]


def hessian(cost, wrt, consider_constant=None, disconnected_inputs="raise"):
    """The Hessian of the scalar ``cost`` with respect to each vector in ``wrt``."""
    wrts, was_list = _as_list(wrt)
    out = []
    for w in wrts:
        if w.ndim != 1:
            raise TypeError(f"hessian: wrt must be vectors, got {w} with {w.ndim} dimensions")
        g = grad(cost, w, consider_constant, disconnected_inputs)
        out.append(jacobian(g, w, consider_constant, disconnected_inputs))
    return out if was_list else out[0]


def numeric_grad(f, points, eps):
    """Central finite differences of the scalar function ``f`` at ``points`` (a list of arrays)."""
    grads = []
    for k, p in enumerate(points):
        g = np.zeros(p.shape, dtype="float64")
        flat = p.reshape(-1)
        gflat = g.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = f(*points)
            flat[j] = orig - eps
            minus = f(*points)
            flat[j] = orig
            gflat[j] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


_DEFAULT_EPS = {"float64": 1e-7, "float32": 3e-3, "float16": 1e-1}
_DEFAULT_TOL = {"float64": 1e-4, "float32": 3e-2, "float16": 1e-1}


def verify_grad(fun, pt, n_tests=2, rng=None, eps=None, out_type=None, abs_tol=None,
                rel_tol=None, mode=None, cast_to_output_type=False, no_debug_ref=True):
    """Check ``fun``'s symbolic gradient against central finite differences at ``pt``.

    ``fun`` takes symbolic tensors (one per array in ``pt``) and returns a tensor;
    the check differentiates a random projection of it. Raises GradientError on
    disagreement beyond the tolerances (defaults depend on the dtype).
    """
    from theanine.compile.function import function
    from theanine.tensor.math import sum as tsum
    from theanine.tensor.type import TensorType

    if rng is None:
        rng = np.random.default_rng(42)
    if not isinstance(pt, (list, tuple)):
        raise TypeError("verify_grad: pt must be a list of arrays")
    points = [np.array(p) for p in pt]
    for i, p in enumerate(points):
        if p.dtype.kind not in "fc":
            raise TypeError(f"verify_grad: pt[{i}] must be a float array, got dtype {p.dtype}")
    inputs = [TensorType(str(p.dtype), (None,) * p.ndim)(name=f"input_{i}") for i, p in enumerate(points)]
    out = fun(*inputs)
    if isinstance(out, (list, tuple)):
        raise TypeError("verify_grad: fun must return a single tensor")
    dtype = str(np.result_type(*points, np.float16))
    eps = eps if eps is not None else _DEFAULT_EPS.get(dtype, 1e-7)
    abs_tol = abs_tol if abs_tol is not None else _DEFAULT_TOL.get(dtype, 1e-4)
    rel_tol = rel_tol if rel_tol is not None else _DEFAULT_TOL.get(dtype, 1e-4)
    out_value = function(inputs, out, mode=mode, on_unused_input="ignore")(*points)
    for _ in range(n_tests):
        proj = np.asarray(rng.uniform(0.5, 1.5, size=np.shape(out_value)), dtype=out.dtype
                          if out.dtype in FLOAT_DTYPES else "float64")
        cost = tsum(out * proj)
        symbolic = grad(cost, inputs, disconnected_inputs="ignore")
        f_cost = function(inputs, cost, mode=mode, on_unused_input="ignore")
        f_grad = function(inputs, symbolic, mode=mode, on_unused_input="ignore")
        analytic = f_grad(*points)
        work = [p.astype("float64") if dtype == "float64" else p.copy() for p in points]

        def f_num(*args):
            return float(f_cost(*[a.astype(p.dtype) for a, p in zip(args, points)]))
        numeric = numeric_grad(f_num, work, eps)
        for i, (a, nmr) in enumerate(zip(analytic, numeric)):
            a = np.asarray(a, dtype="float64")
            abs_err = np.abs(a - nmr)
            rel_err = abs_err / np.maximum(np.abs(a) + np.abs(nmr), 1e-8)
            bad = (abs_err > abs_tol) & (rel_err > rel_tol)
            if bad.any():
                raise GradientError(i, float(abs_err.max()), float(rel_err[bad].max()), abs_tol,
                                    rel_tol, a, nmr)


verify_grad.E_grad = GradientError

__all__ = ["grad", "Lop", "Rop", "jacobian", "hessian", "verify_grad", "zero_grad",
           "disconnected_grad", "grad_clip", "grad_scale", "consider_constant", "numeric_grad",
           "DisconnectedType", "NullType", "DisconnectedInputError", "NullTypeGradError",
           "GradientError", "grad_not_implemented", "grad_undefined"]
