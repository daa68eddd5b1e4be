"""nonzero and boolean-mask indexing in the native entry (modes 'llvm' and 'c'), against NumPy.

In the native modes ``Nonzero`` is a schedule step (``NonZero``) and a mask is lowered to
the integer vectors of its nonzero, so these run without calling back into Python
(``entry_call`` checks that the entry alone computes the call); mode 'py' is the reference
path. A mask whose shape differs from the dimensions it indexes raises NumPy's IndexError
in every mode.
"""

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine.gradient import verify_grad

#: a test of the native modes only
NATIVE = pytest.mark.parametrize("target", ["llvm", "c"])


def sym(arr):
    """A symbolic tensor of ``arr``'s dtype and rank, with sizes known only at run time."""
    return T.tensor(dtype=np.asarray(arr).dtype, shape=(None,) * np.ndim(arr))


def assert_same(got, want):
    """``got`` equals ``want`` exactly, shape and dtype included."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, got.dtype, want.shape, want.dtype)
    np.testing.assert_array_equal(got, want)


def views(a):
    """``a`` and views of it NumPy does not lay out in C order (when it has elements to)."""
    out = [a]
    if a.ndim >= 1 and a.shape[0] > 1:
        out.append(a[::-1])
    if a.ndim >= 2:
        out.append(a.transpose())
        out.append(a[:, ::-2])
    return out


def sparse(rng, shape, dtype):
    """Values of ``dtype`` of which about half are zero."""
    values = rng.integers(1, 4, size=shape) * (rng.uniform(size=shape) > 0.5)
    return values.astype(dtype)


# --- nonzero ------------------------------------------------------------------------------

SHAPES = [(0,), (1,), (7,), (3, 4), (0, 3), (3, 0), (2, 3, 4), (2, 0, 3), (1, 1, 1)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int32", "uint32", "int64", "float32", "float64"])
def test_nonzero_matches_numpy(mode, entry_call, rng, shape, dtype):
    xv = sparse(rng, shape, dtype)
    x = sym(xv)
    f = theanine.function([x], [T.nonzero(x, return_matrix=True)] + list(T.nonzero(x)), mode=mode)
    for v in views(xv):
        want = np.nonzero(v)
        got = entry_call(f, v)
        assert_same(got[0], np.array(want, dtype="int64").reshape(len(shape), -1))
        for g, w in zip(got[1:], want):
            assert_same(g, w)


@pytest.mark.parametrize("fill", [0, 1], ids=["all_zero", "all_nonzero"])
def test_nonzero_of_all_zero_and_all_nonzero(mode, entry_call, fill):
    xv = np.full((3, 5), fill, dtype="float64")
    x = T.dmatrix()
    f = theanine.function([x], T.nonzero(x, return_matrix=True), mode=mode)
    assert_same(entry_call(f, xv), np.array(np.nonzero(xv)))


def test_nonzero_counts_nan_and_not_negative_zero(mode, entry_call):
    xv = np.array([0.0, -0.0, np.nan, 1e-300, -np.inf, 0.0], dtype="float64")
    x = T.dvector()
    f = theanine.function([x], [T.nonzero(x)[0], T.flatnonzero(x)], mode=mode)
    got = entry_call(f, xv)
    assert_same(got[0], np.nonzero(xv)[0])
    assert_same(got[1], np.flatnonzero(xv))


def test_nonzero_of_a_computed_array(mode, entry_call, rng):
    xv = rng.normal(size=(4, 6))
    x = T.dmatrix()
    f = theanine.function([x], [T.nonzero(x > 0.3)[1], T.flatnonzero(x[:, ::-1] < 0)], mode=mode)
    for v in views(xv):
        got = entry_call(f, v)
        assert_same(got[0], np.nonzero(v > 0.3)[1])
        assert_same(got[1], np.flatnonzero(v[:, ::-1] < 0))


def test_nonzero_of_0d_is_refused_as_numpy_refuses_it():
    with pytest.raises(ValueError):
        T.nonzero(T.dscalar())


@NATIVE
def test_nonzero_is_a_native_step(target):
    x = T.dtensor3()
    f = theanine.function([x], T.nonzero(x, return_matrix=True), mode=target)
    assert f.fallbacks == []
    assert "nonzero" in f.source(target)


# --- x[mask] ---------------------------------------------------------------------------------

MASKS = [  # (shape of x, shape of the mask, the index around the mask)
    ((6,), (6,), lambda m: m),
    ((0,), (0,), lambda m: m),
    ((3, 4, 5), (3,), lambda m: m),
    ((3, 4, 5), (3, 4), lambda m: m),
    ((3, 4, 5), (3, 4, 5), lambda m: m),
    ((3, 4, 5), (3,), lambda m: (m, slice(1, None))),
    ((3, 4, 5), (4,), lambda m: (slice(None), m)),
    ((3, 4, 5), (4, 5), lambda m: (slice(None, None, -1), m)),
    ((3, 4, 5), (5,), lambda m: (Ellipsis, m)),
    ((3, 4, 5), (4,), lambda m: (1, m)),
    ((3, 4, 5), (4,), lambda m: (slice(None), m, 2)),
    ((3, 4, 5), (3,), lambda m: (m, None, slice(None, None, 2))),
    ((0, 4), (0,), lambda m: m),
    ((4, 0), (4,), lambda m: m),
]


def case_ids(cases) -> list:
    """Test ids naming each case by its number and shapes (the same in every test worker)."""
    return [f"{k}:x{x_shape}:mask{mask_shape}" for k, (x_shape, mask_shape, _) in enumerate(cases)]


def mask_values(rng, shape, kind):
    if kind == "random":
        return rng.uniform(size=shape) > 0.5
    return np.full(shape, kind == "all_true")


@pytest.mark.parametrize("kind", ["random", "all_false", "all_true"])
@pytest.mark.parametrize("x_shape,mask_shape,index", MASKS, ids=case_ids(MASKS))
def test_mask_indexing_matches_numpy(mode, entry_call, rng, x_shape, mask_shape, index, kind):
    xv = rng.normal(size=x_shape)
    mv = mask_values(rng, mask_shape, kind)
    x, m = sym(xv), sym(mv)
    f = theanine.function([x, m], x[index(m)], mode=mode)
    for v in views(xv):
        if v.shape == xv.shape:
            assert_same(entry_call(f, v, mv), v[index(mv)])
    for mask in views(mv):  # masks laid out any way
        if mask.shape == mv.shape:
            assert_same(entry_call(f, xv, mask), xv[index(mask)])


def test_mask_of_comparison_on_strided_inputs(mode, entry_call, rng):
    xv = rng.normal(size=(5, 8)).astype("float32")
    x = T.fmatrix()
    f = theanine.function([x], [x[x > 0], x[:, ::-1][x[:, ::-1] < 0.5], x[x[:, 0] > 0]], mode=mode)
    for v in views(xv):
        got = entry_call(f, v)
        assert_same(got[0], v[v > 0])
        assert_same(got[1], v[:, ::-1][v[:, ::-1] < 0.5])
        assert_same(got[2], v[v[:, 0] > 0])


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint16", "int64", "float32"])
def test_mask_indexing_of_every_dtype(mode, entry_call, rng, dtype):
    xv = sparse(rng, (4, 5), dtype)
    mv = rng.uniform(size=(4, 5)) > 0.4
    x, m = sym(xv), sym(mv)
    f = theanine.function([x, m], [x[m], x[m[:, 0]]], mode=mode)
    got = entry_call(f, xv, mv)
    assert_same(got[0], xv[mv])
    assert_same(got[1], xv[mv[:, 0]])


def test_mask_as_a_constant(mode, entry_call, rng):
    xv = rng.normal(size=(4, 3))
    mv = np.array([True, False, True, True])
    x = T.dmatrix()
    out = x[T.constant(mv)]
    assert out.type.shape[0] == 3
    f = theanine.function([x], out, mode=mode)
    assert_same(entry_call(f, xv), xv[mv])


@NATIVE
def test_mask_within_a_scan_step(target, rng):
    X = T.dmatrix()
    out, _ = theanine.scan(lambda r: r[r > 0].sum(), sequences=[X])
    f = theanine.function([X], out, mode=target)
    assert f.fallbacks == []
    xv = rng.normal(size=(6, 7))
    np.testing.assert_allclose(f.entry(xv), [r[r > 0].sum() for r in xv], rtol=1e-12)


# --- x[mask] = y -----------------------------------------------------------------------------

@pytest.mark.parametrize("op", ["set", "inc"])
@pytest.mark.parametrize("kind", ["random", "all_false", "all_true"])
def test_set_and_inc_with_masks(mode, entry_call, rng, op, kind):
    xv = rng.normal(size=(4, 3, 2))
    mv = mask_values(rng, (4, 3), kind)
    count = int(mv.sum())
    x, m = T.dtensor3(), T.tensor(dtype="bool", shape=(None, None))
    y_points, y_row = T.dmatrix(), T.dvector()
    fn = T.set_subtensor if op == "set" else T.inc_subtensor
    # the last one writes into (a copy of) the view x[1:], as set_subtensor does
    outs = [fn(x[m], 2.5), fn(x[m], y_points), fn(x[m], y_row), fn(x[:, m[0]], y_row),
            fn(x[1:][m[1:]], -1.0)]
    f = theanine.function([x, m, y_points, y_row], outs, mode=mode)
    yp, yr = rng.normal(size=(count, 2)), rng.normal(size=(2,))
    got = entry_call(f, xv, mv, yp, yr)
    wants = []
    for base, index, value in [(xv, mv, 2.5), (xv, mv, yp), (xv, mv, yr), (xv, (slice(None), mv[0]), yr),
                               (xv[1:], mv[1:], -1.0)]:
        want = base.copy()
        if op == "set":
            want[index] = value
        else:
            want[index] += value
        wants.append(want)
    for g, w in zip(got, wants):
        assert_same(g, w)


def test_set_where_negative_on_a_reversed_view(mode, entry_call, rng):
    xv = rng.normal(size=(5, 6))
    x = T.dmatrix()
    f = theanine.function([x], [T.set_subtensor(x[x < 0], 0.0), T.inc_subtensor(x[::-1][x[::-1] > 0], 1.0)],
                          mode=mode)
    for v in views(xv):
        got = entry_call(f, v)
        assert_same(got[0], np.maximum(v, 0))
        assert_same(got[1], np.where(v[::-1] > 0, v[::-1] + 1, v[::-1]))  # the view's values, updated


# --- gradients -------------------------------------------------------------------------------

def test_gradient_of_mask_indexing(mode, rng):
    xv = rng.normal(size=(4, 5))
    xv[np.abs(xv) < 0.1] = 0.5  # away from the comparison's threshold
    mv = rng.uniform(size=(4, 5)) > 0.5
    verify_grad(lambda v: v[v > 0] * 2, [xv], mode=mode, rng=rng)
    verify_grad(lambda v: v[mv] ** 2, [xv], mode=mode, rng=rng)
    verify_grad(lambda v: v[mv[:, 0], 1:], [xv], mode=mode, rng=rng)
    verify_grad(lambda v: T.set_subtensor(v[v < 0], v[v < 0] * 3), [xv], mode=mode, rng=rng)


def test_gradient_runs_in_the_entry(mode, entry_call, rng):
    xv = rng.normal(size=(4, 5))
    x, m = T.dmatrix(), T.tensor(dtype="bool", shape=(None, None))
    g = theanine.grad((x[m] ** 2).sum() + x[x > 1].sum(), x)
    f = theanine.function([x, m], g, mode=mode)
    mv = rng.uniform(size=(4, 5)) > 0.5
    assert_same(entry_call(f, xv, mv), 2 * xv * mv + (xv > 1))
    if mode != "py":  # one nonzero per mask, shared by x[mask] and its gradient
        assert sum(type(n.op).__name__ == "Nonzero" for n in f.graph.toposort()) == 2


# --- errors ------------------------------------------------------------------------------------

MISMATCHED = [  # (shape of x, shape of the mask, the index around the mask)
    ((5,), (4,), lambda m: m),
    ((5,), (6,), lambda m: m),
    ((3, 4), (3, 3), lambda m: m),
    ((3, 4), (2,), lambda m: m),
    ((3, 4), (5,), lambda m: (slice(None), m)),
    ((3, 4), (1,), lambda m: (slice(None), m)),  # masks do not broadcast
]


@pytest.mark.parametrize("x_shape,mask_shape,index", MISMATCHED, ids=case_ids(MISMATCHED))
@pytest.mark.parametrize("op", ["get", "set", "inc"])
def test_mismatched_masks_raise_index_error(mode, x_shape, mask_shape, index, op):
    xv = np.zeros(x_shape)
    mv = np.ones(mask_shape, dtype=bool)
    with pytest.raises(IndexError):  # NumPy's own error
        if op == "get":
            xv[index(mv)]
        else:
            xv[index(mv)] += 1.0
    x, m = sym(xv), sym(mv)
    out = {"get": x[index(m)], "set": T.set_subtensor(x[index(m)], 1.0),
           "inc": T.inc_subtensor(x[index(m)], 1.0)}[op]
    f = theanine.function([x, m], out, mode=mode)
    if mode != "py":
        assert f.fallbacks == []
        assert f.entry(xv, mv) is NotImplemented  # the entry hands the call over ...
    with pytest.raises(IndexError, match="boolean index did not match indexed array along axis"):
        f(xv, mv)  # ... and the node-by-node path raises


# --- export (freestanding C) -----------------------------------------------------------------

def test_export_of_nonzero_and_masks_given_as_arguments(tmp_path, rng):
    from test_export_c import CC, Library  # the harness building an export as a shared object
    if CC is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    x, m = T.dmatrix(), T.tensor(dtype="bool", shape=(None,))
    f = theanine.function([x, m], [T.nonzero(x, return_matrix=True), x[m], T.set_subtensor(x[m], 0.0)],
                          mode="c")
    lib = Library(f, tmp_path)
    xv = sparse(rng, (4, 3), "float64")
    mv = np.array([True, False, True, True])
    for v in views(xv):
        if v.shape == xv.shape:
            got = lib(v, mv)
            assert_same(got[0], np.array(np.nonzero(v)))
            assert_same(got[1], v[mv])
            want = v.copy()
            want[mv] = 0.0
            assert_same(got[2], want)
    assert lib(xv, mv[:3]) == -3  # THEANINE_ERR_INDEX


def test_export_refuses_a_mask_it_cannot_size(tmp_path):
    x = T.dvector()
    f = theanine.function([x], x[x > 0], mode="c")
    with pytest.raises(ValueError, match="cannot be exported"):
        theanine.export_c(f, tmp_path)


@pytest.mark.parametrize("index", [[4, 0, 2, 2], [2 ** 64 - 1], [], [2 ** 63 - 1 + 2 ** 63 - 4]])
def test_uint64_index_arrays_are_cast_as_numpy_casts_them(mode, index):
    x, m, i = T.dvector("x"), T.dmatrix("m"), T.vector("i", dtype="uint64")
    f = theanine.function([x, m, i], [x[i], T.inc_subtensor(x[i], 1.0), m[i, 1:],
                                      T.set_subtensor(m[i, :1], -1.0)], mode=mode)
    if mode != "py":
        assert f.fallbacks == []
    xv, mv, iv = np.arange(5.0), np.arange(15.0).reshape(5, 3), np.array(index, dtype="uint64")
    inc, put = xv.copy(), mv.copy()
    np.add.at(inc, iv.astype(np.int64), 1.0)
    put[iv, :1] = -1.0
    for got, want in zip(f(xv, mv, iv), [xv[iv], inc, mv[iv, 1:], put]):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError, match="out of bounds"):
        f(xv, mv, np.array([2 ** 63], dtype="uint64"))


@pytest.mark.parametrize("value", [0, 3, 4, 5, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1])
def test_uint64_integers_and_slice_bounds_are_taken_as_numpy_takes_them(mode, value):
    """An integer index of 2**63 or more raises OverflowError (never wraps to a negative
    index); a slice bound that large clamps, as Python slices do."""
    x, i = T.dvector("x"), T.scalar("i", dtype="uint64")
    xv, iv = np.arange(5.0), np.uint64(value)
    slices = theanine.function([x, i], [x[i:], x[:i], x[::i + np.uint64(value < 2 ** 64 - 1)],
                                        T.set_subtensor(x[i:], -1.0)], mode=mode)
    integers = theanine.function([x, i], [x[i], T.inc_subtensor(x[i], 1.0)], mode=mode)
    if mode != "py":
        assert slices.fallbacks == [] and integers.fallbacks == []
        assert slices._native.host_nodes == [] and integers._native.host_nodes == []
    step = iv + np.uint64(value < 2 ** 64 - 1)
    put = xv.copy()
    put[iv:] = -1.0
    for got, want in zip(slices(xv, iv), [xv[iv:], xv[:iv], xv[::step], put]):
        np.testing.assert_array_equal(got, want)
    if value >= 2 ** 63:
        with pytest.raises(OverflowError):
            integers(xv, iv)
    elif value >= 5:
        with pytest.raises(IndexError, match="out of bounds"):
            integers(xv, iv)
    else:
        inc = xv.copy()
        inc[value] += 1.0
        got = integers(xv, iv)
        assert got[0] == xv[value]
        np.testing.assert_array_equal(got[1], inc)
