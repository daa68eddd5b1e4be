"""theanine.tensor.nnet.bn against the formulas of Theano's batch-normalization ops."""

from __future__ import annotations

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad
from theanine.tensor.nnet import bn

TOL = {"float32": dict(rtol=1e-4, atol=1e-5), "float64": dict(rtol=1e-10, atol=1e-12)}


def ref_train(x, gamma, beta, axes, eps, factor, running_mean, running_var):
    """Theano's AbstractBatchNormTrain.perform, with parameters of the inputs' rank."""
    mean = x.mean(axes, keepdims=True)
    var = x.var(axes, keepdims=True)
    invstd = 1.0 / np.sqrt(var + eps)
    out = (x - mean) * (gamma * invstd) + beta
    m = np.prod([x.shape[a] for a in axes])
    new_mean = running_mean * (1.0 - factor) + mean * factor
    new_var = running_var * (1.0 - factor) + (m / (m - 1)) * var * factor
    return out, mean, invstd, new_mean, new_var


def param_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


CASES = [  # input shape, axes argument, normalized axes
    ((6, 3), "per-activation", (0,)),
    ((4, 3, 2, 5), "spatial", (0, 2, 3)),
    ((4, 3, 5), "per-activation", (0,)),
    ((3, 4, 5), (0, 2), (0, 2)),
    ((5, 1, 3), (2, 0), (0, 2)),
]


@pytest.mark.parametrize("full_rank_params", [True, False], ids=["params_full_rank", "params_reduced"])
def test_batch_normalization_train(mode, rng, full_rank_params):
    """Every case of CASES in one compiled function."""
    inputs, outputs, values, pshapes = [], [], [], []
    for shape, axes, norm_axes in CASES:
        pshape = param_shape(shape, norm_axes)
        if not full_rank_params:
            pshape = tuple(s for i, s in enumerate(pshape) if i not in norm_axes)
        x = T.tensor(dtype="float64", shape=(None,) * len(shape))
        params = [T.tensor(dtype="float64", shape=(None,) * len(pshape)) for _ in range(4)]
        gamma, beta, rm, rv = params
        outs = bn.batch_normalization_train(x, gamma, beta, axes, 1e-3, 0.2, rm, rv)
        assert len(outs) == 5
        inputs += [x] + params
        outputs += list(outs)
        values.append([rng.normal(size=shape)] + [rng.uniform(0.5, 1.5, size=pshape) for _ in range(4)])
        pshapes.append(pshape)
    got = theanine.function(inputs, outputs, mode=mode)(*[v for case in values for v in case])
    for k, ((shape, _, norm_axes), case_values, pshape) in enumerate(zip(CASES, values, pshapes)):
        full = [v.reshape(param_shape(shape, norm_axes)) for v in case_values[1:]]
        want = ref_train(case_values[0], full[0], full[1], norm_axes, 1e-3, 0.2, full[2], full[3])
        case_got = got[5 * k: 5 * k + 5]
        np.testing.assert_allclose(case_got[0], want[0], **TOL["float64"])
        for g, w in zip(case_got[1:], want[1:]):
            assert g.shape == pshape
            np.testing.assert_allclose(g, w.reshape(pshape), **TOL["float64"])


def test_batch_normalization_train_without_running_statistics(mode, rng):
    x, gamma, beta = T.fmatrix(), T.fvector(), T.fvector()
    outs = bn.batch_normalization_train(x, gamma, beta)
    assert len(outs) == 3
    f = theanine.function([x, gamma, beta], list(outs), mode=mode)
    xv = rng.normal(size=(8, 3)).astype("float32")
    g, b = np.array([1.0, 2.0, 0.5], "float32"), np.array([0.0, -1.0, 3.0], "float32")
    out, mean, invstd = f(xv, g, b)
    assert out.dtype == mean.dtype == invstd.dtype == "float32"
    want = ref_train(xv.astype("float64"), g, b, (0,), 1e-4, 0.1, 0, 0)
    np.testing.assert_allclose(out, want[0], **TOL["float32"])
    np.testing.assert_allclose(mean, want[1][0], **TOL["float32"])
    np.testing.assert_allclose(invstd, want[2][0], **TOL["float32"])
    # the normalized output has zero mean and unit variance (up to epsilon)
    np.testing.assert_allclose(((out - b) / g).mean(0), 0, atol=1e-5)


@pytest.mark.parametrize("shape,axes,norm_axes", CASES[:3], ids=[str(c[1]) for c in CASES[:3]])
def test_batch_normalization_test(mode, rng, shape, axes, norm_axes):
    pshape = param_shape(shape, norm_axes)
    x = T.tensor(dtype="float64", shape=(None,) * len(shape))
    params = [T.tensor(dtype="float64", shape=(None,) * len(pshape)) for _ in range(4)]
    out = bn.batch_normalization_test(x, *params, axes=axes, epsilon=1e-4)
    f = theanine.function([x] + params, out, mode=mode)
    xv = rng.normal(size=shape)
    g, b, m, v = (rng.uniform(0.5, 1.5, size=pshape) for _ in range(4))
    np.testing.assert_allclose(f(xv, g, b, m, v), (xv - m) * (g / np.sqrt(v + 1e-4)) + b, **TOL["float64"])
    np.testing.assert_allclose(f(xv.T.copy().T, g, b, m, v), (xv - m) * (g / np.sqrt(v + 1e-4)) + b,
                               **TOL["float64"])


def test_batch_normalization_compiles_to_kernels(rng):
    x, gamma, beta = T.dmatrix(), T.dvector(), T.dvector()
    out = bn.batch_normalization_train(x, gamma, beta)[0]
    for mode in ("llvm", "c"):
        f = theanine.function([x, gamma, beta], out, mode=mode)
        assert f.kernels
        ops = {type(n.op).__name__ for n in f.fallbacks}
        # only shape bookkeeping may remain in Python; the arithmetic is in kernels
        assert ops <= {"DimShuffle", "Shape", "Subtensor", "SumTo", "SpecifyShape", "MakeVector"}, ops


def test_gradients(mode, rng):
    """Training and inference outputs together (stacked), in all their inputs."""
    xv = rng.normal(size=(5, 3))
    g, b = rng.uniform(0.5, 1.5, size=3), rng.normal(size=3)
    m, v = rng.normal(size=3), rng.uniform(0.5, 1.5, size=3)
    verify_grad(lambda x, gm, bt, mu, var: T.stack([
        bn.batch_normalization_train(x, gm, bt, epsilon=1e-3)[0],
        bn.batch_normalization_test(x, gm, bt, mu, var)]), [xv, g, b, m, v], mode=mode)


def test_spatial_gradients(rng):
    xv = rng.normal(size=(2, 2, 3, 2))
    g, b = rng.uniform(0.5, 1.5, size=(1, 2, 1, 1)), rng.normal(size=(1, 2, 1, 1))
    verify_grad(lambda x, gm, bt: bn.batch_normalization_train(x, gm, bt, "spatial")[0], [xv, g, b], mode="py")
    verify_grad(lambda x, gm, bt: bn.batch_normalization_train(x, gm, bt, "spatial")[2], [xv, g, b], mode="py")


def test_old_interface(mode, rng):
    x, g, b, m, s = T.dmatrix(), T.dvector(), T.dvector(), T.dvector(), T.dvector()
    f = theanine.function([x, g, b, m, s], bn.batch_normalization(x, g, b, m, s), mode=mode)
    values = [rng.normal(size=(4, 3))] + [rng.uniform(0.5, 1.5, size=3) for _ in range(4)]
    xv, gv, bv, mv, sv = values
    np.testing.assert_allclose(f(*values), (xv - mv) * (gv / sv) + bv, **TOL["float64"])


def test_errors():
    x, v = T.dmatrix(), T.dvector()
    with pytest.raises(ValueError, match="axes must be 'per-activation', 'spatial' or a tuple of ints, got 'all'"):
        bn.batch_normalization_train(x, v, v, axes="all")
    with pytest.raises(ValueError, match=r"axes must lie in \[0, 2\) for inputs with 2 dimensions, got \(2,\)"):
        bn.batch_normalization_train(x, v, v, axes=(2,))
    with pytest.raises(ValueError, match="at least one normalization axis"):
        bn.batch_normalization_train(x, v, v, axes=())
    with pytest.raises(ValueError, match="beta must have 1 dimensions"):
        bn.batch_normalization_train(T.dtensor3(), T.dvector(), T.dtensor3(), axes=(0, 2))
    with pytest.raises(ValueError, match="give both running_mean and running_var, or neither"):
        bn.batch_normalization_train(x, v, v, running_mean=v)
    with pytest.raises(ValueError, match="epsilon must be at least 1e-5, got 1e-06"):
        bn.batch_normalization_train(x, v, v, epsilon=1e-6)
    with pytest.raises(ValueError, match="gamma must have size 1 on the normalization axes"):
        bn.batch_normalization_test(x, T.tensor(dtype="float64", shape=(3, 4)), x, x, x)
    with pytest.raises(TypeError, match="inputs must have a float dtype, got int64"):
        bn.batch_normalization_test(T.lmatrix(), v, v, v, v)
