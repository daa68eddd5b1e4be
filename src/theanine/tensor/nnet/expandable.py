"""Ops that stand for an expression of primitive ops until late in rewriting.

An ``ExpandableOp`` is a single node while the graph is built and rewritten,
so stabilizing rewrites can recognise it (``log(softmax(x))``, a cross-entropy
of a softmax). Its ``expand`` method gives the same computation as elementwise
ops and reductions, which the specialize phase substitutes (see
``theanine.rewriting.nnet``) so that native modes fuse it into kernels.
``perform`` stays the NumPy reference.
"""

from __future__ import annotations

from theanine.graph.basic import Op
from theanine.tensor.type import FLOAT_DTYPES


class ExpandableOp(Op):
    """An op with an equivalent expression of primitive ops (``expand``)."""

    def expand(self, *inputs):
        """The outputs of this op on ``inputs``, as a list of primitive-op expressions."""
        raise NotImplementedError(f"{type(self).__name__}.expand")

    def expansion_vjp(self, inputs, output_grads):
        """The vector-Jacobian product of ``expand``: gradients for ops whose derivative
        needs no special care (floats only; discrete inputs get zero gradients)."""
        from theanine.gradient import Lop, grad_undefined_for_discrete
        from theanine.graph.traversal import clone_replace
        # Fresh stand-ins keep the gradients apart when one variable feeds several inputs.
        stand_ins = [x.type() for x in inputs]
        outputs = self.expand(*stand_ins)
        wrt = [s for s in stand_ins if s.dtype in FLOAT_DTYPES]
        if not wrt:
            return [grad_undefined_for_discrete(x) for x in inputs]
        grads = Lop(outputs, wrt, list(output_grads), disconnected_inputs="ignore")
        grads = clone_replace(grads, dict(zip(stand_ins, inputs)))
        by_stand_in = dict(zip(wrt, grads))
        return [by_stand_in[s] if s in by_stand_in else grad_undefined_for_discrete(x)
                for s, x in zip(stand_ins, inputs)]
