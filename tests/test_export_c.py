"""theanine.export_c: a compiled function as freestanding C (NAME.c, NAME.h).

The exported files are compiled with the system C compiler, without Python, NumPy or
BLAS: a C main program for the MLP forward pass, and a shared object called through
ctypes for the other checks (each compared with mode 'py').
"""

import ctypes
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import shared

CC = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc") or shutil.which("clang")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on PATH")


class Buffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("ndim", ctypes.c_int64),
                ("shape", ctypes.POINTER(ctypes.c_int64)), ("strides", ctypes.POINTER(ctypes.c_int64))]


def compile_c(sources, out, shared_object=False):
    cmd = [CC, "-O2", "-std=c11", "-Wall", "-Wno-unknown-pragmas", "-Wno-unused-variable"]
    cmd += ["-shared", "-fPIC"] if shared_object else []
    proc = subprocess.run(cmd + [str(s) for s in sources] + ["-o", str(out), "-lm"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    return out


class Library:
    """An exported function built as a shared object, called with NumPy arrays."""

    def __init__(self, f, tmp_path, name="fn"):
        c_path, _ = theanine.export_c(f, tmp_path, name)
        self.lib = ctypes.CDLL(str(compile_c([c_path], tmp_path / f"{name}.so", shared_object=True)))
        self.size = getattr(self.lib, f"{name}_workspace_size")
        self.size.restype, self.size.argtypes = ctypes.c_int64, [ctypes.POINTER(Buffer)]
        self.run = getattr(self.lib, f"{name}_run")
        self.run.restype = ctypes.c_int
        self.run.argtypes = [ctypes.POINTER(Buffer), ctypes.POINTER(Buffer), ctypes.c_void_p]
        self.n_out = len(f.graph.outputs)
        self.dtypes = [v.dtype for v in f.graph.outputs]

    def __call__(self, *arrays, strides=True):
        """The outputs (copies), or the negative code an API function returned."""
        buffers = (Buffer * max(len(arrays), 1))()
        keep = []
        for k, a in enumerate(arrays):
            shape = (ctypes.c_int64 * max(a.ndim, 1))(*a.shape)
            st = (ctypes.c_int64 * max(a.ndim, 1))(*a.strides)
            keep += [shape, st]
            buffers[k] = Buffer(a.ctypes.data, a.ndim, shape, st if strides else None)
        need = self.size(buffers)
        if need < 0:
            return need
        workspace = np.empty(max(need, 1), np.uint8)
        outputs = (Buffer * max(self.n_out, 1))()
        rc = self.run(buffers, outputs, workspace.ctypes.data)
        if rc != 0:
            return rc
        results = []
        for k in range(self.n_out):
            o = outputs[k]
            shape = tuple(o.shape[d] for d in range(o.ndim))
            item = np.dtype(self.dtypes[k]).itemsize
            assert [o.strides[d] for d in range(o.ndim)] == [item * int(np.prod(shape[d + 1:]))
                                                             for d in range(o.ndim)]
            end = workspace.ctypes.data + need - item * int(np.prod(shape))
            assert workspace.ctypes.data <= o.data <= end  # in the workspace
            count = int(np.prod(shape))
            raw = (ctypes.c_char * (count * item)).from_address(o.data) if count else b""
            results.append(np.frombuffer(bytes(raw), self.dtypes[k]).reshape(shape).copy())
        return results


def mlp(rng, mode):
    x = T.fmatrix("x")
    W1 = shared(rng.normal(size=(20, 16)).astype("float32") * 0.5, name="W1")
    b1 = shared(rng.normal(size=16).astype("float32"), name="b1")
    W2 = shared(rng.normal(size=(16, 16)).astype("float32") * 0.5, name="W2")
    b2 = shared(rng.normal(size=16).astype("float32"), name="b2")
    W3 = shared(rng.normal(size=(16, 5)).astype("float32") * 0.5, name="W3")
    h = T.nnet.relu(T.dot(x, W1) + b1)
    h = T.nnet.relu(T.dot(h, W2) + b2)
    z = T.dot(h, W3)
    e = T.exp(z - T.max(z, axis=1, keepdims=True))
    return theanine.function([x], e / T.sum(e, axis=1, keepdims=True), mode=mode, name="mlp")


MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "mlp.h"

static const int64_t output_itemsize[mlp_NUM_OUTPUTS] = {4};

static int64_t read_i64(FILE *f)
{
    int64_t v;
    if (fread(&v, sizeof v, 1, f) != 1)
        exit(3);
    return v;
}

/* inputs file: per input, ndim, itemsize, sizes, then the elements in C order;
 * outputs file: per output, ndim, sizes, then the elements in C order */
int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    FILE *in = fopen(argv[1], "rb");
    if (!in)
        return 2;
    theanine_buffer inputs[mlp_NUM_INPUTS], outputs[mlp_NUM_OUTPUTS];
    for (int k = 0; k < mlp_NUM_INPUTS; k++) {
        const int64_t ndim = read_i64(in), itemsize = read_i64(in);
        int64_t *shape = malloc(sizeof(int64_t) * (ndim ? ndim : 1)), count = 1;
        for (int64_t d = 0; d < ndim; d++)
            count *= shape[d] = read_i64(in);
        void *data = malloc(count * itemsize + 1);
        if (fread(data, itemsize, count, in) != (size_t)count)
            return 3;
        inputs[k] = (theanine_buffer){data, ndim, shape, NULL};
    }
    fclose(in);
    int status = 0;
    const int64_t need = mlp_workspace_size(inputs);
    void *workspace = malloc(need > 0 ? need : 1);
    const int rc = need < 0 ? (int)need : mlp_run(inputs, outputs, workspace);
    if (rc != THEANINE_OK) {
        fprintf(stderr, "error %d\n", rc);
        status = 4;
    } else {
        FILE *out = fopen(argv[2], "wb");
        for (int k = 0; k < mlp_NUM_OUTPUTS; k++) {
            int64_t count = 1;
            fwrite(&outputs[k].ndim, sizeof(int64_t), 1, out);
            for (int64_t d = 0; d < outputs[k].ndim; d++)
                count *= outputs[k].shape[d];
            fwrite(outputs[k].shape, sizeof(int64_t), outputs[k].ndim, out);
            fwrite(outputs[k].data, output_itemsize[k], count, out);
        }
        fclose(out);
    }
    free(workspace);
    for (int k = 0; k < mlp_NUM_INPUTS; k++) {
        free(inputs[k].data);
        free((void *)inputs[k].shape);
    }
    return status;
}
"""


@needs_cc
def test_mlp_forward_pass_as_a_c_program(tmp_path, rng):
    f = mlp(rng, "c")
    theanine.export_c(f, tmp_path)
    assert (tmp_path / "mlp.c").exists() and (tmp_path / "mlp.h").exists()
    (tmp_path / "main.c").write_text(MAIN)
    # exactly the documented command line, then the program with it
    proc = subprocess.run([CC, "-O2", "-std=c11", "-c", "mlp.c"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    program = compile_c([tmp_path / "main.c", tmp_path / "mlp.c"], tmp_path / "mlp")
    xv = rng.normal(size=(9, 20)).astype("float32")
    arrays = [xv] + [s.get_value() for s in f._shared]
    with open(tmp_path / "inputs.bin", "wb") as out:
        for a in arrays:
            out.write(struct.pack(f"<{2 + a.ndim}q", a.ndim, a.itemsize, *a.shape))
            out.write(np.ascontiguousarray(a).tobytes())
    proc = subprocess.run([str(program), "inputs.bin", "outputs.bin"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    blob = (tmp_path / "outputs.bin").read_bytes()
    ndim, = struct.unpack_from("<q", blob)
    shape = struct.unpack_from(f"<{ndim}q", blob, 8)
    got = np.frombuffer(blob, np.float32, offset=8 * (1 + ndim)).reshape(shape)
    want = f(xv)
    assert got.shape == (9, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got, mlp(np.random.default_rng(20261127), "py")(xv), rtol=1e-5, atol=1e-7)


def test_the_header_documents_the_api(tmp_path, rng):
    f = mlp(rng, "c")
    c_path, h_path = theanine.export_c(f, tmp_path, "net")
    header = open(h_path).read()
    for text in ("typedef struct {", "void *data;", "const int64_t *strides;", "} theanine_buffer;",
                 "int64_t net_workspace_size(const theanine_buffer *inputs);",
                 "int net_run(const theanine_buffer *inputs, theanine_buffer *outputs, void *workspace);",
                 "#define net_NUM_INPUTS 6", "#define net_NUM_OUTPUTS 1", "THEANINE_ERR_SHAPE (-2)",
                 "float32  (?, ?)           x", "shared W1", "shared b2"):
        assert text in header, text
    source = open(c_path).read()
    assert '#include "net.h"' in source and "Python.h" not in source and "numpy" not in source
    assert "static void net_k0(" in source and "gemm" in source


@needs_cc
def test_elementwise_reductions_and_strided_inputs(tmp_path, rng):
    x, r = T.dmatrix("x"), T.drow("r")
    outs = [T.exp(-x * x) * r + 1, T.sum(x * 2, axis=0), T.max(x, axis=1), T.prod(x), T.any(x > 1)]
    f, ref = theanine.function([x, r], outs, mode="c"), theanine.function([x, r], outs, mode="py")
    lib = Library(f, tmp_path)
    for xv in (rng.normal(size=(6, 10)), rng.normal(size=(6, 20))[:, ::2], rng.normal(size=(10, 6)).T,
               rng.normal(size=(3, 10))[::-1]):
        rv = rng.normal(size=(1, xv.shape[1]))
        for got, want in zip(lib(xv, rv), ref(xv, rv)):
            np.testing.assert_allclose(got, want, rtol=1e-12)
    xv = np.ascontiguousarray(xv)
    for got, want in zip(lib(xv, rv, strides=False), ref(xv, rv)):  # NULL strides: C order
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert lib(rng.normal(size=(3, 10)), rng.normal(size=(1, 9))) == -2  # THEANINE_ERR_SHAPE
    assert lib(np.zeros((3, 0)), np.zeros((1, 0))) == -4  # max over an empty axis: THEANINE_ERR_EMPTY
    for got, want in zip(lib(np.zeros((0, 10)), rv), ref(np.zeros((0, 10)), rv)):
        np.testing.assert_array_equal(got, want)
    assert lib(rng.normal(size=10), rv) == -1  # wrong rank: THEANINE_ERR_INPUT


@needs_cc
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dot_of_every_rank_and_layout(tmp_path, rng, dtype):
    a, b = T.tensor(dtype=dtype, shape=(None, None)), T.tensor(dtype=dtype, shape=(None, None))
    v = T.tensor(dtype=dtype, shape=(None,))
    outs = [T.dot(a, b), T.dot(a, v), T.dot(v, b), T.dot(v, v)]
    f = theanine.function([a, b, v], outs, mode="c")
    ref = theanine.function([a, b, v], outs, mode="py")
    lib = Library(f, tmp_path)
    av, bv, vv = (rng.normal(size=s).astype(dtype) for s in ((4, 3), (3, 3), (3,)))
    tol = 1e-5 if dtype == "float32" else 1e-12
    for x in (av, np.asfortranarray(av), av[::-1], np.repeat(av, 2, axis=1)[:, ::2]):
        for y in (bv, bv.T, bv[:, ::-1]):
            for got, want in zip(lib(x, y, vv[::-1]), ref(x, y, vv[::-1])):
                np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    got = lib(np.ones((2, 0), dtype), np.ones((0, 3), dtype), np.ones(0, dtype))
    np.testing.assert_array_equal(got[0], np.zeros((2, 3)))
    assert lib(av, np.ones((4, 3), dtype), vv) == -2


@needs_cc
def test_indexing_alloc_reshape_and_arange(tmp_path, rng):
    x, i, n = T.dmatrix("x"), T.iscalar("i"), T.lscalar("n")
    outs = [x[i, 1:] * 2, x[::-1, ::2] + 1, x[i - 1:] * 3, T.alloc(x[0], n, x.shape[1]) * 1,
            T.reshape(x, (n, -1)) + 0, T.reshape(x.T, (-1,)) * 1, T.arange(0, n * 2, 3) + 0]
    f = theanine.function([x, i, n], outs, mode="c")
    ref = theanine.function([x, i, n], outs, mode="py")
    lib = Library(f, tmp_path)
    xv = rng.normal(size=(4, 6))
    for iv, nv in [(1, 2), (-2, 4), (3, 8)]:
        args = (xv, np.array(iv, "int32"), np.array(nv))
        for got, want in zip(lib(*args), ref(*args)):
            np.testing.assert_array_equal(got, want)
    assert lib(xv, np.array(4, "int32"), np.array(2)) == -3  # THEANINE_ERR_INDEX
    assert lib(xv, np.array(1, "int32"), np.array(5)) == -2  # 24 elements in 5 rows


@needs_cc
def test_shared_variables_are_inputs_and_updates_are_outputs(tmp_path, rng):
    x = T.dvector("x")
    w = shared(rng.normal(size=3), name="w")
    c = shared(np.zeros(()), name="count")
    f = theanine.function([x], T.dot(x, w), updates=[(w, w - 0.1 * x), (c, c + 1)], mode="c")
    header = open(theanine.export_c(f, tmp_path, "step")[1]).read()
    assert "shared w" in header and "new value of shared w" in header and "shared count" in header
    lib = Library(f, tmp_path, "step")
    xv, wv = rng.normal(size=3), w.get_value()
    got = lib(xv, wv, np.zeros(()))
    np.testing.assert_allclose(got[0], xv @ wv, rtol=1e-12)
    np.testing.assert_allclose(got[1], wv - 0.1 * xv, rtol=1e-12)
    np.testing.assert_array_equal(got[2], 1.0)


def test_same_function_same_bytes_and_names_are_sanitised(tmp_path, rng):
    x = T.dvector("x */ evil\n#include <nothing> ??/")
    y = shared(np.arange(3.0), name="y*/")
    f = theanine.function([x], x * y + T.constant(np.array([0.5, np.nan, -0.0])), mode="c")
    first = [open(p).read() for p in theanine.export_c(f, tmp_path / "a", "same")]
    second = [open(p).read() for p in theanine.export_c(f, tmp_path / "b", "same")]
    assert first == second
    g = theanine.function([x], x * y + T.constant(np.array([0.5, np.nan, -0.0])), mode="c")
    assert [open(p).read() for p in theanine.export_c(g, tmp_path / "c", "same")] == first
    for text in first:
        assert "evil\n" not in text and "#include <nothing>" not in text and "??/" not in text
        for comment in text.split("/*")[1:]:
            assert "/*" not in comment.split("*/")[0]


@needs_cc
def test_constants_are_embedded_bit_for_bit(tmp_path):
    x = T.dvector("x")
    k = np.array([0.5, np.nan, -0.0, np.inf, 5e-324, -1.7976931348623157e308])
    f = theanine.function([x], x + T.constant(k), mode="c")
    lib = Library(f, tmp_path)
    got = lib(np.zeros(6))[0]
    assert got.tobytes() == (np.zeros(6) + k).tobytes()


def test_functions_without_a_schedule_are_refused_with_the_node(tmp_path):
    x = T.dvector("x")
    streams = T.random.RandomStreams(3)
    f = theanine.function([x], x + T.cast(streams.uniform((3,), dtype="float16"), "float64"), mode="c")
    with pytest.raises(ValueError, match="cannot be exported.*float16"):  # no float16 in schedules
        theanine.export_c(f, tmp_path)
    xs, k = T.dmatrix("xs"), T.lscalar("k")
    picked, _ = theanine.scan(lambda xt, k: xt[(k + T.cast(xt[0] > 0, "int64")) % 2], sequences=xs,
                              non_sequences=[k])
    f = theanine.function([xs, k], picked, mode="c")
    with pytest.raises(ValueError, match="cannot be exported.*loop step computes the integers"):
        theanine.export_c(f, tmp_path)
    with pytest.raises(ValueError, match="not a C identifier"):
        theanine.export_c(theanine.function([x], x + 1, mode="c"), tmp_path, "2bad")
    assert not list(tmp_path.iterdir())


@needs_cc
def test_gathers_scatters_argmax_cumsum_and_checks_export(tmp_path):
    x, i = T.dmatrix("x"), T.lvector("i")
    checked = T.assert_op(i, T.all(T.ge(i, 0)), message="negative")
    outs = [x[checked] * 2, T.inc_subtensor(x[i], 1.0), T.argmax(x, axis=1), T.cumsum(x, axis=0)]
    f = theanine.function([x, i], outs, mode="c")
    lib = Library(f, tmp_path)
    xv, iv = np.random.default_rng(0).normal(size=(4, 3)), np.array([3, 0, 3])
    want = f(xv, iv)
    got = lib(xv, iv)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    assert lib(xv, np.array([3, -1, 0])) < 0  # the check fails: an error code, no output


@needs_cc
def test_scans_export_as_loops_forward_backward_and_while(tmp_path, rng):
    x, h0, W = T.dtensor3("x"), T.dmatrix("h0"), T.dmatrix("W")
    hs, _ = theanine.scan(lambda xt, h, W: T.tanh(xt + T.dot(h, W)), sequences=x, outputs_info=h0,
                          non_sequences=[W])
    cost = (hs[-1] ** 2).sum()
    steps, _ = theanine.scan(lambda p: (p * 2, theanine.scan_module.until(p.sum() > 40)),
                             outputs_info=h0[0], n_steps=50)
    outs = [hs, cost] + theanine.grad(cost, [x, h0, W]) + [steps]
    f = theanine.function([x, h0, W], outs, mode="c")
    ref = theanine.function([x, h0, W], outs, mode="py")
    lib = Library(f, tmp_path)
    for n_steps in (5, 1):
        values = [rng.normal(size=(n_steps, 3, 4)), rng.uniform(0.5, 1, size=(3, 4)),
                  0.5 * rng.normal(size=(4, 4))]
        got, want = lib(*values), ref(*values)
        assert [g.shape for g in got] == [np.shape(w) for w in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
    assert len(got[-1]) < 50  # the while loop stopped early


@needs_cc
def test_sorts_and_permutations_export(tmp_path, rng):
    x = T.dmatrix("x")
    streams = T.random.RandomStreams(5)
    outs = [T.argsort(x), T.sort(x, axis=0), x[:, streams.permutation(n=x.shape[1])]]
    f = theanine.function([x], outs, mode="c", no_default_updates=True)
    ref = theanine.function([x], outs, mode="py", no_default_updates=True)
    lib = Library(f, tmp_path)
    for shape in [(3, 7), (1, 1), (4, 0), (2, 300)]:
        xv = rng.normal(size=shape)
        xv[0, :2] = np.nan if shape[1] > 1 else xv[0, :2]
        state = streams.state_updates[0][0].get_value()  # shared values follow the inputs
        got, want = lib(xv, state), ref(xv)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
