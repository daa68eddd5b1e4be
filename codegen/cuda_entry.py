"""A whole compiled function for mode 'cuda' as one C entry: the schedule run with device buffers.

``render_cuda_entry`` renders a ``schedule.Schedule`` through c_entry's step renderer
with a host of its own, and says where every buffer lives:

- **on the device**: the arguments and shared values of rank 1 or more, and what the
  element work makes from them: elementwise and reduction kernels (launched through the
  launchers of a CUDA module, ``module``), matrix products (a callback: cuBLAS or the
  module's tiled kernel), joins, increments, fills and copies;
- **on the host**: the sizes and the arithmetic on them: ``ShapeOf``, ``MakeVector``,
  ``ARange``, arguments and shared values of rank 0, and every elementwise, reduction,
  join or increment step whose inputs all live on the host (their C kernels are compiled
  into the entry's own unit, ``host``); constants live on both sides (a copy on the device
  is made once per program).

Views stay on the side of their source. A device step reading a host value gets a copy
on the device (made once per call at the top level, at each use inside a loop); a host
step reading a few device integers (an index, a reshape's sizes, a loop's count, a
``while`` condition) gets them through a small synchronous copy. Steps that loop over
elements in C (argmax, cumulative sums, sorts, gathers, scatters, nonzero) and calls back
into Python are host-only: with device inputs the schedule is refused (``Unsupported``)
and mode 'cuda' runs that function node by node.

The entry is ``int NAME(void *const *table, char *const *data, char *const *host_data,
const int64_t *dims, const int64_t *strides, char **out_data, int64_t *out_dims, int64_t
*out_strides)``: ``data`` holds each argument's and shared value's data pointer (device, or
host for rank 0), ``host_data`` the same values' data on the host when the caller has
them in C order with the device copy's layout (NULL otherwise: the host reading indices
from them then needs no copy back), ``dims``/``strides`` their sizes and byte strides, one
after the other; each result's
pointer, sizes and strides come back the same way (``result_sides`` says which results are
on the host). It returns 0; a negative code, -1 - the index of the reason in
``BAIL_REASONS``, when the call must take the node-by-node path (which raises the full
error: shapes that do not broadcast, an index out of range, ...); or the CUDA error of a
launch or callback. Memory: results come from the ``alloc`` callback (kind 1 on
the device, kind 2 on the host: arrays the caller then owns); every other device buffer
has a slot of its own whose block is kept between calls and grown when a call needs more
(``alloc`` kind 0; ``drop`` gives a block back), so a call of the same shapes allocates
nothing but its results. Host temporaries use the C stack or malloc.
"""

from __future__ import annotations

import contextlib

from theanine.codegen import c as crender
from theanine.codegen.c_entry import GLUE, TableHost, _array, _Steps, _View, checked_size
from theanine.codegen.cuda import ATOMIC_ADD, IndexedKernel, LineKernel
from theanine.codegen.sorting import SCRATCH_WORDS
from theanine.codegen.ir import ReduceKernel
from theanine.codegen.llvm import ITEMSIZE
from theanine.codegen.schedule import (VIEW_STEPS, ARange, ArgReduce, ArgSort, CumOp, Elementwise, Fill,
                                       Gather, Gemm, HostCall, IncSubtensor, Join, Loop, MakeVector, NonZero,
                                       Reduce, Reshape, Scatter, ShapeOf, walk, written)

#: the ``kind`` argument of the ``alloc`` callback
ALLOC_KEPT, ALLOC_DEVICE_RESULT, ALLOC_HOST_RESULT = 0, 1, 2
#: the ``kind`` argument of the ``copy`` callback (cudaMemcpyKind's values)
COPY_TO_DEVICE, COPY_TO_HOST = 1, 2

_HOST_ONLY = (NonZero, HostCall)


#: why a call is handed to the node-by-node path: the entry returns -1 - the reason's index
BAIL_REASONS = ("input", "shape", "index", "empty", "unsupported", "layout", "memory")


class Unsupported(Exception):
    """The schedule has a step this entry cannot run where its data is."""


def data_inputs(step) -> list:
    """The buffers whose elements ``step`` reads (not only their sizes or a few integers)."""
    if isinstance(step, (Elementwise, Reduce, Join)):
        return list(step.inputs)
    if isinstance(step, Gemm):
        return [step.a, step.b]
    if isinstance(step, IncSubtensor):
        return [step.x, step.y]
    if isinstance(step, Fill):
        return [step.value]
    if isinstance(step, (ArgReduce, CumOp, ArgSort, NonZero, Gather)):   # (a gather's indices: read on the host)
        return [step.src]
    if isinstance(step, Scatter):
        return [step.x, step.y]
    if isinstance(step, HostCall):
        return list(step.inputs)
    return []


class _CudaSteps(_Steps):
    """c_entry's steps, each run on the side its inputs say (see the module docstring)."""

    def __init__(self, schedule, host, kernels):
        super().__init__(schedule, host)
        self.kernels = kernels          # kernel name -> (kernel IR, inner_broadcast)
        self.home = {}                  # buffer -> 'host' | 'device'
        self.side = "device"            # where the step being rendered runs
        self.host_kernels, self.device_kernels = set(), set()
        self.constant_keys = dict(schedule.constants)
        self.device_copies, self.host_copies = {}, {}   # top-level copies, by buffer
        self.loop_values = set()        # what the enclosing loops' outputs take from their bodies
        self.input_index = {b: k for k, b in enumerate(list(schedule.args) + list(schedule.shared))}
        for b in self.input_index:
            self.home[b] = "host" if schedule.buffers[b].ndim == 0 else "device"
        for b, _ in schedule.constants:
            self.home[b] = "host"

    # where things run
    def _side_of(self, step) -> str:
        if isinstance(step, (ShapeOf, MakeVector, ARange)):
            return "host"
        if isinstance(step, VIEW_STEPS + (Reshape,)):
            return self.home[step.src]
        if isinstance(step, (Gemm, Loop, Fill)):
            return "device"
        on_host = all(self.home[b] == "host" for b in data_inputs(step))
        if isinstance(step, _HOST_ONLY):
            if not on_host:
                raise Unsupported(f"{type(step).__name__} runs on the host, but its input is on the device")
            return "host"
        return "host" if on_host else "device"

    def _step(self, step):
        outer = self.side
        self.side = side = self._side_of(step)
        defined = written(step)
        if side == "host" and self.loop_values.intersection(defined):
            raise Unsupported(f"a loop keeps a value that {type(step).__name__} computes on the host")
        for b in defined:
            self.host.placing(b, side)
        if isinstance(step, Loop):
            self._enter_loop(step)
        with self._seen_from(side, data_inputs(step) if not isinstance(step, Loop) else []):
            super()._step(step)
        if isinstance(step, Loop):
            self.loop_values.difference_update(o.value for o in step.outputs)
        for b in defined:
            self.home[b] = side
        self.side = outer

    def _enter_loop(self, step):
        """Say where the loop's buffers are: bound ones where their outer buffers are, the
        taps, states and outputs on the device (with device copies of their initial values)."""
        for outer, b in list(step.sequences) + list(step.bindings):
            self.home[b] = self.home[outer]
        for o in step.outputs:
            self.home[o.out] = "device"
            for _, b in o.taps:
                self.home[b] = "device"
            if o.init is not None and self.home[o.init] == "host":
                self.views[o.init] = self._device_view(o.init)
                self.home[o.init] = "device"
        self.loop_values.update(o.value for o in step.outputs)

    @contextlib.contextmanager
    def _seen_from(self, side, buffers):
        """Within the block, ``views`` shows ``buffers`` as copies on ``side`` where they are
        elsewhere."""
        saved = {}
        for b in dict.fromkeys(buffers):
            if self.home.get(b, side) != side:
                saved[b] = self.views[b]
                self.views[b] = self._device_view(b) if side == "device" else self._host_view(b)
        try:
            yield
        finally:
            self.views.update(saved)

    # copies between the sides
    def _device_view(self, b) -> _View:
        """Host buffer ``b`` on the device (a constant's copy made at load time)."""
        v, buf = self.views[b], self.s.buffers[b]
        strides = self._contiguous_strides(buf.dtype, v.dims)
        if b in self.constant_keys:
            return _View(f"(char *){self.host.slot('device ' + self.constant_keys[b])}", v.dims, strides)
        if not self.loop_depth and b in self.device_copies:
            return self.device_copies[b]
        w = self.w
        w.require(self._is_contiguous(b), "layout")
        nbytes = w.mul(self._count(v.dims), str(ITEMSIZE[buf.dtype]))
        data = self.host.device_slot(("copy", len(self.host.slots)), nbytes)
        self.host.copy(data, v.data, nbytes, COPY_TO_DEVICE)
        view = _View(data, v.dims, strides)
        if not self.loop_depth:
            self.device_copies[b] = view
        return view

    def _host_view(self, b) -> _View:
        """A few integers of device buffer ``b`` (static sizes) copied to the host stack."""
        v, buf = self.views[b], self.s.buffers[b]
        if any(n is None for n in buf.shape):
            raise Unsupported(f"the host reads a device buffer of {buf.ndim} dimension(s) whose sizes "
                              "are not static")
        if not self.loop_depth and b in self.host_copies:
            return self.host_copies[b]
        w = self.w
        nbytes = ITEMSIZE[buf.dtype]
        for n in buf.shape:
            nbytes *= n
        if nbytes > 4096:
            raise Unsupported(f"the host would read {nbytes} bytes of a device buffer")
        w.require(self._is_contiguous(b), "layout")
        w.n += 1
        name = f"hostcopy{w.n}"
        w.raw(f"_Alignas(16) char {name}[{max(nbytes, 1)}];")
        data = self._argument_on_host(b, lambda: (self.host.copy(name, v.data, str(nbytes), COPY_TO_HOST), name)[1])
        view = _View(data, v.dims, self._contiguous_strides(buf.dtype, v.dims))
        if not self.loop_depth:
            self.host_copies[b] = view
        return view

    def _count(self, dims) -> str:
        total = "1"
        for n in dims:
            total = self.w.mul(total, n)
        return total

    def _argument_on_host(self, b, copy) -> str:
        """The host data of device buffer ``b``: for an argument or shared value given as a
        C-ordered host array, that array's (``host_data``); else where ``copy()`` (rendering
        a copy from the device) says."""
        k = self.input_index.get(b)
        if k is None:
            return copy()
        w = self.w
        w.n += 1
        name = f"hostread{w.n}"
        w.raw(f"char *{name} = host_data[{k}];")
        w.open(f"if ({name} == NULL)")
        w.raw(f"{name} = {copy()};")
        w.close()
        return name

    def _host_array(self, b) -> _View:
        """Integer vector ``b`` where the host can read it: itself, or a copy in host memory
        (kept for the rest of the call at the top level, else until ``free_temporaries``)."""
        if self.home[b] == "host":
            return self.views[b]
        if not self.loop_depth and b in self.host_copies:
            return self.host_copies[b]
        w, v, buf = self.w, self.views[b], self.s.buffers[b]
        w.require(self._is_contiguous(b), "layout")
        nbytes = w.mul(self._count(v.dims), str(ITEMSIZE[buf.dtype]))

        def copy():
            name = self.host.temporary(f"malloc((size_t){nbytes} + 1)", until_the_end=not self.loop_depth)
            self.host.copy(name, v.data, nbytes, COPY_TO_HOST)
            return f"(char *){name}"
        view = _View(self._argument_on_host(b, copy), v.dims, self._contiguous_strides(buf.dtype, v.dims))
        if not self.loop_depth:
            self.host_copies[b] = view
        return view

    # gathers and scatters on the device: the host works out a table of byte offsets
    def _offset_table(self, view, indices, sources, length, unique=False) -> str:
        """The device table of byte offsets of ``view[indices[0][i], ..., indices[k-1][i]]``
        for i < ``length`` (``sources``: the index vectors' host views); an index out of range
        (or, when ``unique``, a repeated point) stops the call."""
        w, host = self.w, self.host
        table = host.temporary(f"malloc((size_t){w.mul(length, '8')} + 8)")
        w.n += 1
        i = f"point{w.n}"
        w.open(f"for (int64_t {i} = 0; {i} < {length}; {i}++)")
        offset = "0"
        for d, (b, iv) in enumerate(zip(indices, sources)):
            mem = crender.MEM_TYPES[self.s.buffers[b].dtype]
            k = w.let(f"(int64_t)*(const {mem} *)({iv.data} + {i} * {iv.strides[0]})")
            n = view.dims[d]
            k = w.select(w.cmp(k, "<", "0"), w.let(f"{k} + {n}"), k)
            w.require(w.all_of([w.cmp(k, ">=", "0"), w.cmp(k, "<", n)]), "index")
            offset = w.let(f"{offset} + {w.mul(k, view.strides[d])}")
        w.raw(f"((int64_t *){table})[{i}] = {offset};")
        w.close()
        if unique:
            order = host.temporary(f"malloc((size_t){w.mul(length, '8')} + 8)")
            w.require(f"!th_repeats((const int64_t *){table}, {length}, (int64_t *){order})", "index")
        device = host.device_slot(("table", len(host.slots)), w.mul(length, "8"))
        host.copy(device, table, w.mul(length, "8"), COPY_TO_DEVICE)
        return device

    def _indexed(self, mode, dtype, rank, shape, data, strides):
        """Launch the IndexedKernel of ``mode``, ``dtype`` and ``rank`` over ``shape``."""
        name = f"__INDEXED_{mode}_{dtype}_{rank}__"
        self.kernels.setdefault(name, (IndexedKernel(name, rank, dtype, mode), None))
        self._call(name, shape, data, strides, self._count(shape))

    # work along lines on the device: one thread per line, the line's axis moved last
    def _lines(self, kind, src, out_dtype, dims, buffers):
        """Launch the LineKernel ``kind`` over ``dims`` (the line last); ``buffers``: (data,
        strides along ``dims``) of its input, output (and scratch)."""
        in_dtype, rank = self.s.buffers[src].dtype, len(dims)
        name = f"__LINE_{kind}_{in_dtype}_{out_dtype}_{rank}__"
        self.kernels.setdefault(name, (LineKernel(name, rank, in_dtype, out_dtype, kind), None))
        self._call(name, dims, [data for data, _ in buffers], [strides for _, strides in buffers],
                   self._count(dims))

    def _line_source(self, step):
        """(dims, strides) of ``step.src`` with the axis moved last, or as one C-ordered line
        when the axis is None (a layout that is not C-ordered then stops the call)."""
        v, w = self.views[step.src], self.w
        if step.axis is None:
            w.require(self._is_contiguous(step.src), "layout")
            return [self._count(v.dims)], [str(ITEMSIZE[self.s.buffers[step.src].dtype])]
        order = [d for d in range(len(v.dims)) if d != step.axis] + [step.axis]
        return [v.dims[d] for d in order], [v.strides[d] for d in order]

    def _ArgReduce(self, step):
        if self.side == "host":
            return super()._ArgReduce(step)
        w, v = self.w, self.views[step.src]
        dims, strides = self._line_source(step)
        w.require(w.cmp(dims[-1], ">", "0"), "empty")
        out = self._allocate(step.out, dims[:-1])
        self._lines(step.kind, step.src, "int64", dims, [(v.data, strides), (out.data, out.strides + ["0"])])

    def _CumOp(self, step):
        if self.side == "host":
            return super()._CumOp(step)
        v = self.views[step.src]
        dims, strides = self._line_source(step)
        out = self._allocate(step.out, dims if step.axis is None else list(v.dims))
        out_strides = out.strides if step.axis is None else \
            [out.strides[d] for d in range(len(v.dims)) if d != step.axis] + [out.strides[step.axis]]
        self._lines("cumsum" if step.mode == "add" else "cumprod", step.src, self.s.buffers[step.out].dtype,
                    dims, [(v.data, strides), (out.data, out_strides)])

    def _ArgSort(self, step):
        if self.side == "host":
            return super()._ArgSort(step)
        w, v = self.w, self.views[step.src]
        out = self._allocate(step.out, list(v.dims))
        words = w.mul(str(SCRATCH_WORDS), v.dims[-1])
        scratch_strides, size = ["0"], w.mul(words, "8")
        for n in reversed(v.dims[:-1]):
            scratch_strides.insert(0, size)
            size = w.mul(size, n)
        scratch = self.host.device_slot(("scratch", len(self.host.slots)), size)
        self._lines("argsort", step.src, "int64", list(v.dims),
                    [(v.data, v.strides), (out.data, out.strides), (scratch, scratch_strides)])

    def _Gather(self, step):
        if self.side == "host":
            return super()._Gather(step)
        w, v = self.w, self.views[step.src]
        dtype = self.s.buffers[step.out].dtype
        if self.s.buffers[step.src].dtype != dtype:
            raise Unsupported("a gather that converts its values")
        length = self._index_length(step.indices)
        rest = v.dims[len(step.indices):]
        out = self._allocate(step.out, [length] + rest)
        sources = [self._host_array(b) for b in step.indices]
        w.open(f"if ({w.cmp(self._count([length] + rest), '>', '0')})")
        table = self._offset_table(v, step.indices, sources, length)
        rest_strides = v.strides[len(step.indices):]
        self._indexed("gather", dtype, 1 + len(rest), [length] + rest, [v.data, table, out.data],
                      [["0"] + rest_strides, ["8"] + ["0"] * len(rest), out.strides])
        w.close()
        self.host.free_temporaries()

    def _Scatter(self, step):
        if self.side == "host":
            return super()._Scatter(step)
        w = self.w
        x, y = self.views[step.x], self.views[step.y]
        dtype = self.s.buffers[step.x].dtype
        if self.s.buffers[step.y].dtype != dtype or not (step.set or dtype in ATOMIC_ADD):
            raise Unsupported("a scatter that converts its values, or adds without an atomic addition")
        length = self._index_length(step.indices)
        out = self._allocate(step.out, x.dims)
        self._copy(step.copy, x, x.dims, out)
        rest = x.dims[len(step.indices):]
        per_point = len(y.dims) == len(rest) + 1
        if per_point:
            w.require(w.any_of([w.eq(y.dims[0], "1"), w.eq(y.dims[0], length)]), "shape")
            y_rest, y_rest_strides = y.dims[1:], y.strides[1:]
            first = w.select(w.eq(y.dims[0], "1"), "0", y.strides[0])
        else:
            y_rest, y_rest_strides, first = y.dims, y.strides, "0"
        w.require(w.all_of([str(len(y_rest) <= len(rest)).lower()] + [
            w.any_of([w.eq(n, "1"), w.eq(n, rest[len(rest) - len(y_rest) + d])])
            for d, n in enumerate(y_rest)]), "shape")
        value = []
        for d in range(len(rest)):
            j = d - (len(rest) - len(y_rest))
            value.append("0" if j < 0 else w.select(w.eq(y_rest[j], "1"), "0", y_rest_strides[j]))
        sources = [self._host_array(b) for b in step.indices]
        w.open(f"if ({w.cmp(self._count([length] + rest), '>', '0')})")
        # a set writes each point once: a repeated point (NumPy keeps the last value) goes
        # node by node
        table = self._offset_table(out, step.indices, sources, length, unique=step.set)
        self._indexed("set" if step.set else "inc", dtype, 1 + len(rest), [length] + rest, [y.data, table, out.data],
                      [[first] + value, ["8"] + ["0"] * len(rest), ["0"] + out.strides[len(step.indices):]])
        w.close()
        self.host.free_temporaries()

    # reads of integers and conditions: on the host
    def _scalar(self, b) -> str:
        with self._seen_from("host", [b]):
            return super()._scalar(b)

    def _truth(self, b) -> str:
        with self._seen_from("host", [b]):
            return super()._truth(b)

    def _entries(self, b, n) -> list:
        with self._seen_from("host", [b]):
            return super()._entries(b, n)

    # memory and kernels
    def _on_stack(self, b) -> bool:
        return self.side == "host"

    def _allocate(self, b, dims):
        if b in self.row_targets and self.side == "host":
            raise Unsupported("a loop's row would be written on the host")
        self.host.placing(b, self.side)
        return super()._allocate(b, dims)

    def zero(self, data, nbytes):
        if self.side == "host":
            super().zero(data, nbytes)
        else:
            self.host.checked(f"{self.host.api('zero', 'th_zero_fn')}({data}, {nbytes})")

    def fill(self, data, count, dtype, literal):
        if self.side == "host":
            super().fill(data, count, dtype, literal)
        # a device reduction writes every output element itself

    def _call(self, kernel, shape, data, strides, total):
        if self.side == "host":
            self.host_kernels.add(kernel)
            super()._call(kernel, shape, data, strides, total)
            return
        self.device_kernels.add(kernel)
        w, host = self.w, self.host
        w.open("")
        w.raw(f"const int64_t shape[{len(shape)}] = {_array(shape)};")
        w.raw(f"char *const data[{len(data)}] = {_array(data)};")
        w.raw(f"const int64_t strides[{len(strides) * len(shape)}] = "
              f"{_array([s for row in strides for s in row])};")
        reduce = isinstance(self.kernels[kernel][0], ReduceKernel)
        launch = host.api(f"launch:{kernel}", "th_reduce_fn" if reduce else "th_launch_fn")
        if reduce:
            size = w.let(f"{host.api(f'workspace:{kernel}', 'th_workspace_fn')}(shape)")
            work = host.device_slot(("workspace", len(host.slots)), size)
            host.checked(f"{launch}(shape, data, strides, {size} > 0 ? {work} : NULL, NULL)")
        else:
            host.checked(f"{launch}(shape, data, strides, NULL)")
        w.close()


class _CudaHost(TableHost):
    """Arguments as (data, sizes, strides) triples; device memory in kept slots or from the
    ``alloc`` callback; results written back through ``out_*`` (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.w.fail = lambda reason: f"{{ rc = {-1 - BAIL_REASONS.index(reason)}; goto bail; }}"
        self.slots = {}          # key -> index of a kept device block
        self.placed = {}         # buffer -> the side it was last allocated on
        self.result_sides = []

    def checked(self, call):
        """Run ``call`` (returning a CUDA error code); a non-zero code ends the call with it."""
        self.w.raw(f"{{ const int e = {call}; if (e != 0) {{ rc = e; goto bail; }} }}")

    def copy(self, dst, src, nbytes, kind):
        self.checked(f"{self.api('copy', 'th_copy_fn')}({dst}, {src}, {nbytes}, {kind})")

    def device_slot(self, key, nbytes) -> str:
        """A kept device block of at least ``nbytes`` bytes for ``key`` (memory: bail)."""
        index = self.slots.setdefault(key, len(self.slots))
        w = self.w
        w.n += 1
        name = f"dev{w.n}"
        w.raw(f"char *const {name} = th_slot(table, {index}, {nbytes});")
        w.require(f"{name} != NULL", "memory")
        return name

    def placing(self, b, side):
        self.placed[b] = side

    def guard(self, k):
        return None

    def begin(self, steps):
        self.s, self.steps = steps.s, steps
        for b in steps.owned:
            self.w.raw(f"void *owned{b} = NULL;")
        self.w.raw("int rc = 0;")
        self.temporaries, self.live = [], []

    def temporary(self, allocation, until_the_end=False) -> str:
        """A host block from ``allocation`` (a C expression; NULL stops the call), freed by
        ``free_temporaries`` (or, ``until_the_end``, when the call ends) or when it stops."""
        name = f"hosttemp{len(self.temporaries)}"
        self.temporaries.append(name)
        if not until_the_end:
            self.live.append(name)
        self.w.raw(f"{name} = {allocation};")
        self.w.require(f"{name} != NULL", "memory")
        return name

    def free_temporaries(self):
        for name in self.live:
            self.w.raw(f"free({name}); {name} = NULL;")
        self.live = []

    def _buffer(self, k, buf, dims_at) -> _View:
        w = self.w
        dims, strides = [], []
        for d in range(buf.ndim):
            dims.append(checked_size(w, f"dims[{dims_at + d}]", buf.shape[d]))
            strides.append(w.let(f"strides[{dims_at + d}]"))
        return _View(w.let(f"data[{k}]", "char *"), dims, strides)

    def argument(self, k, b, buf) -> _View:
        at = sum(self.s.buffers[a].ndim for a in self.s.args[:k])
        return self._buffer(k, buf, at)

    def arguments_read(self, views):
        pass

    def shared(self, k, b, buf) -> _View:
        n_args = len(self.s.args)
        at = sum(self.s.buffers[a].ndim for a in self.s.args) + \
            sum(self.s.buffers[a].ndim for a in self.s.shared[:k])
        return self._buffer(n_args + k, buf, at)

    def constant(self, b, key, buf) -> str:
        return f"(char *){self.slot(key)}"

    def allocate(self, b, kind, dims, nbytes) -> str:
        w, side = self.w, self.placed[b]
        if kind == "result":
            owner = ALLOC_HOST_RESULT if side == "host" else ALLOC_DEVICE_RESULT
            w.raw(f"owned{b} = {self.api('alloc', 'th_alloc_fn')}({nbytes}, {owner});")
            w.require(f"owned{b} != NULL", "memory")
            return w.let(f"(char *)owned{b}", "char *")
        if side == "device":
            return self.device_slot(("buffer", b), nbytes)
        w.raw(f"owned{b} = malloc((size_t){nbytes} + 1);")
        w.require(f"owned{b} != NULL", "memory")
        return w.let(f"(char *)owned{b}", "char *")

    def address(self, b) -> str:
        """The data of loop state ``b`` (on the device)."""
        return f"((char *)((void **)table[0])[{self.slots[('buffer', b)]}])"

    def move(self, dst, src):
        d, s = self.slots[("buffer", dst)], self.slots.setdefault(("buffer", src), len(self.slots))
        self.w.raw(f"th_swap(table, {d}, {s});")

    def release(self, b):
        if self.placed.get(b) == "host" and self.steps.owned.get(b) in ("heap", "copy"):
            self.w.raw(f"free(owned{b});")
            self.w.raw(f"owned{b} = NULL;")

    def host_call(self, steps, step):
        raise Unsupported("a node calls back into Python")

    def call(self, text, long_):
        self.w.raw(text)

    def gemm(self, steps, dtype, A, B, a_data, b_data, c_data, m, n, k):
        """``c = a @ b`` through the ``gemm`` callback (matrices as rows, cols and byte strides)."""
        self.checked(f"{self.api('gemm', 'th_gemm_fn')}({ITEMSIZE[dtype]}, {m}, {n}, {k}, {a_data}, "
                     f"{A[2]}, {A[3]}, {b_data}, {B[2]}, {B[3]}, {c_data})")

    def end(self, results):
        w, at = self.w, 0
        for k, (b, view) in enumerate(zip(self.s.results, results)):
            self.result_sides.append(self.placed.get(b, self.steps.home.get(b)))
            w.raw(f"out_data[{k}] = {view.data};")
            for d, (n, st) in enumerate(zip(view.dims, view.strides)):
                w.raw(f"out_dims[{at + d}] = {n};")
                w.raw(f"out_strides[{at + d}] = {st};")
            at += len(view.dims)
        for name in self.temporaries:
            w.raw(f"free({name});")
        w.raw("return 0;")
        w.depth -= 1
        w.raw("bail:")
        w.depth += 1
        for b, kind in self.steps.owned.items():
            if kind != "result":
                w.raw(f"free(owned{b});")
        for name in self.temporaries:
            w.raw(f"free({name});")
        w.raw("return rc;")


_TYPES = """typedef int (*th_launch_fn)(const int64_t *, char *const *, const int64_t *, void *);
typedef int (*th_reduce_fn)(const int64_t *, char *const *, const int64_t *, void *, void *);
typedef int64_t (*th_workspace_fn)(const int64_t *);
typedef void *(*th_alloc_fn)(int64_t, int);
typedef void (*th_drop_fn)(void *);
typedef int (*th_copy_fn)(void *, const void *, int64_t, int);
typedef int (*th_zero_fn)(void *, int64_t);
typedef int (*th_gemm_fn)(int, int64_t, int64_t, int64_t, const void *, int64_t, int64_t, const void *,
                          int64_t, int64_t, void *);

/* table[0]: the kept blocks' pointers, table[1]: their sizes, table[2]: alloc, table[3]: drop */
static char *th_slot(void *const *table, int64_t i, int64_t nbytes)
{
    void **ptr = (void **)table[0];
    int64_t *size = (int64_t *)table[1];
    if (nbytes < 1) nbytes = 1;
    if (size[i] < nbytes) {
        if (ptr[i] != NULL) ((th_drop_fn)table[3])(ptr[i]);
        ptr[i] = ((th_alloc_fn)table[2])(nbytes, 0);
        size[i] = ptr[i] != NULL ? nbytes : 0;
    }
    return (char *)ptr[i];
}

static int th_order(const void *a, const void *b)
{
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* whether the n offsets repeat one (sorted into order, n words) */
static int th_repeats(const int64_t *offsets, int64_t n, int64_t *order)
{
    memcpy(order, offsets, (size_t)n * sizeof(int64_t));
    qsort(order, (size_t)n, sizeof(int64_t), th_order);
    for (int64_t i = 1; i < n; i++)
        if (order[i] == order[i - 1]) return 1;
    return 0;
}

static void th_swap(void *const *table, int64_t i, int64_t j)
{
    void **ptr = (void **)table[0];
    int64_t *size = (int64_t *)table[1];
    void *p = ptr[i]; ptr[i] = ptr[j]; ptr[j] = p;
    int64_t n = size[i]; size[i] = size[j]; size[j] = n;
}"""


def render_cuda_entry(schedule, kernels, name) -> dict:
    """``schedule`` as the mode-'cuda' entry ``name`` (see the module docstring); ``kernels``
    maps the schedule's kernel names to (kernel IR, inner_broadcast) pairs. Returns ``host``
    (the C unit: the host steps' kernels and the entry), ``host_kernels`` and ``device``
    (the pairs of the kernels it runs on the host and launches on the device), ``gemms`` (the dtypes of matrix products),
    ``table`` (slot names; the first four are the kept blocks' pointers and sizes, ``alloc``
    and ``drop``), ``n_slots`` and ``result_sides``. Raises Unsupported."""
    host = _CudaHost()
    for fixed in ("slots:ptr", "slots:size", "alloc", "drop"):
        host.slot(fixed)
    steps = _CudaSteps(schedule, host, kernels)
    steps.render()
    host_kernels = [kernels[k] for k in sorted(steps.host_kernels)]
    unit = crender.render_module(host_kernels, "theanine_cuda_host", static=True)
    text = f"""{unit}
/* {name}: the whole function for mode 'cuda' (see theanine.codegen.cuda_entry). The table
 * holds: {', '.join(host.table)}. */
#include <stdlib.h>
#include <string.h>
{_TYPES}

{GLUE}

{"".join(steps.helpers)}
TH_GLUE int {name}(void *const *table, char *const *data, char *const *host_data, const int64_t *dims,
           const int64_t *strides, char **out_data, int64_t *out_dims, int64_t *out_strides)
{{
{chr(10).join([f"    void *{t} = NULL;" for t in host.temporaries] + host.w.pruned())}
}}
"""
    gemms = sorted({schedule.buffers[step.out].dtype for step in walk(schedule.steps)
                    if isinstance(step, Gemm)})
    return {"host": text, "host_kernels": host_kernels,
            "device": [kernels[k] for k in sorted(steps.device_kernels)], "gemms": gemms, "table": host.table, "n_slots": len(host.slots),
            "result_sides": host.result_sides}

