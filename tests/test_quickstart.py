"""The README's first example, and the core promises behind it."""

import numpy as np

import theanine
import theanine.tensor as T


def test_scalar_expression_and_gradients(mode):
    x, y, z = T.dscalar("x"), T.dscalar("y"), T.dscalar("z")
    g = (x + y) * z
    f = theanine.function([x, y, z], [g] + theanine.grad(g, [x, y, z]), mode=mode)
    values = f(1.0, 3.0, -3.0)
    np.testing.assert_allclose(values, [-12.0, -3.0, -3.0, 4.0])


def test_codegen_subpackage_imports():
    import theanine.codegen

    assert theanine.codegen.__name__ == "theanine.codegen"


def test_every_scalar_op_names_an_ir_opcode_of_its_arity():
    """The scalar table and the kernel IR's vocabulary agree (the back ends' contract)."""
    import theanine.scalar.basic as sb
    from theanine.codegen.ir import SCALAR_OPCODES, opcode

    ops = [v for v in vars(sb).values() if isinstance(v, sb.ScalarOp)] + [sb.Cast("int32")]
    assert len(ops) > 60
    for op in ops:
        assert opcode(op.ir).arity == op.nin, op
    used = {op.ir for op in ops}
    assert used == set(SCALAR_OPCODES), set(SCALAR_OPCODES) ^ used
