"""The schedule IR: everything one compiled function does, in order, as one native entry.

A ``Schedule`` names buffers (``Buffer``: dtype, rank, static sizes) and a
straight-line list of steps over them. The entry that runs it takes the
function's arguments as arrays and reads shared variables from their storage,
checks them, runs every step, stores the updates and returns the outputs as
fresh arrays. Buffers are
described to the back end by a data pointer plus, per dimension, a size and a
byte stride, so views (``DimShuffle``, ``Index``, an identity ``SumToShape``)
cost no copy: they only compute new sizes and strides.

A step that finds something the fast path does not handle (shapes that do not
broadcast, an index out of range, a layout BLAS cannot read, an allocation
that fails) makes the whole call *bail*: it releases what it allocated and
returns ``NotImplemented``, and the caller reruns the call on the node-by-node
path, which raises the full error. No step writes into an argument, so a
bailed call leaves no trace.

Memory: a buffer computed inside the entry lives from the step that writes it
to its last reader; results are allocated as NumPy arrays, other buffers on
the heap, small fixed-size ones on the stack. Freed memory is reused by later
steps through the allocator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Buffer:
    """A tensor the schedule reads or writes: ``dtype``, ``ndim``, static sizes (int or None)."""

    dtype: str
    ndim: int
    shape: tuple


@dataclass(frozen=True)
class Elementwise:
    """``outputs = kernel(inputs)`` over the inputs' broadcast shape (NumPy rules).

    ``hoisted[k]``: the kernel reads input k once per row (its static last size
    is 1), so the call is never flattened to one dimension for it."""

    kernel: str
    inputs: tuple
    outputs: tuple
    hoisted: tuple


@dataclass(frozen=True)
class Reduce:
    """``output = reduce_kind over axes of kernel(inputs)``; the kernel's contract is
    ``ir.ReduceKernel``'s (the output starts at the identity of ``kind``)."""

    kernel: str
    inputs: tuple
    output: int
    axes: tuple
    kind: str


@dataclass(frozen=True)
class Gemm:
    """``out = a @ b`` for float32/float64 vectors and matrices (``numpy.dot`` on ranks 1-2),
    through BLAS ``gemm`` (see codegen/blas.py)."""

    a: int
    b: int
    out: int


@dataclass(frozen=True)
class DimShuffle:
    """``out`` is a view of ``src``: ``order`` lists source dimensions and ``'x'`` for new
    size-1 dimensions; source dimensions left out have size 1."""

    src: int
    out: int
    order: tuple


@dataclass(frozen=True)
class SumToShape:
    """``out`` is ``src`` summed to ``like``'s shape; the fast path handles only equal shapes
    (a view) and bails otherwise."""

    src: int
    like: int
    out: int


@dataclass(frozen=True)
class SumToDims:
    """``out`` is ``src`` summed to the sizes ``dims`` (0-d integer buffers, one per
    dimension); the fast path handles only sizes equal to ``src``'s (a view) and bails
    otherwise."""

    src: int
    dims: tuple
    out: int


@dataclass(frozen=True)
class ShapeOf:
    """``out`` (an int64 vector) holds the sizes of ``src``."""

    src: int
    out: int


@dataclass(frozen=True)
class Index:
    """``out`` is the view ``src[items]`` for basic indices. Items, one per index entry:
    ``("i", slot)`` an integer (a 0-d buffer), ``("s", start, stop, step)`` a slice whose
    parts are 0-d buffers or None, ``("n",)`` a new axis. Out-of-range integers bail."""

    src: int
    out: int
    items: tuple


@dataclass(frozen=True)
class Fill:
    """``out`` of sizes ``dims`` (0-d integer buffers) holds ``value`` broadcast to them, copied
    by ``kernel`` (an element copy), or, when ``zero`` (``value`` is a constant whose bits
    are all zero), set with one memset. Negative sizes and values that do not broadcast
    bail."""

    kernel: str
    value: int
    dims: tuple
    out: int
    zero: bool = False


@dataclass(frozen=True)
class MakeVector:
    """``out`` (an integer vector) holds the 0-d integer buffers ``items``."""

    items: tuple
    out: int


@dataclass(frozen=True)
class Reshape:
    """``out`` is ``src`` in C order with the sizes in ``shape`` (an integer vector; one entry
    may be -1): a view of ``src`` when it is C-contiguous, else a copy made by ``kernel``.
    Sizes that do not match bail."""

    kernel: str
    src: int
    shape: int
    out: int


@dataclass(frozen=True)
class SpecifyShape:
    """``out`` is ``src`` after checking its sizes against ``shape`` (ints, or None: free)."""

    src: int
    out: int
    shape: tuple


@dataclass(frozen=True)
class ARange:
    """``out`` = arange(start, stop, step) of the integer buffers given (0-d); step 0 bails."""

    start: int
    stop: int
    step: int
    out: int


@dataclass(frozen=True)
class Join:
    """``out`` = the ``inputs`` concatenated along ``axis``; ``kernels[k]`` copies input k
    (converting its dtype). Sizes that differ off the axis bail."""

    kernels: tuple
    inputs: tuple
    axis: int
    out: int


@dataclass(frozen=True)
class IncSubtensor:
    """``out`` = a copy of ``x`` (made by ``copy``) whose region ``items`` (as in Index) is
    set to ``y`` (``set``: ``write`` converts y) or incremented by it (``write`` adds y to
    the region in place). ``y`` must broadcast to the region, else the step bails."""

    copy: str
    write: str
    x: int
    y: int
    items: tuple
    out: int
    set: bool


@dataclass(frozen=True)
class ArgReduce:
    """``out`` (int64) = the index of the first largest (``argmax``) or smallest (``argmin``)
    element of ``src`` along ``axis``, or of ``src`` flattened in C order when ``axis`` is
    None; a NaN counts as the extreme. An empty reduction bails."""

    src: int
    out: int
    axis: object
    kind: str


@dataclass(frozen=True)
class Gather:
    """``out[i] = src[indices[0][i], ..., indices[k-1][i]]`` (a sub-array of ``src`` when it
    has more than k dimensions), copied by ``kernel``. The index vectors must have one
    length; negative indices count from the end; one out of range bails."""

    kernel: str
    src: int
    indices: tuple
    out: int


@dataclass(frozen=True)
class Scatter:
    """``out`` = a copy of ``x`` (made by ``copy``) where each point ``i`` of ``indices``
    (as in Gather) is set to (``set``) or incremented by the matching part of ``y`` with
    ``write``; repeated points accumulate in order, as numpy.add.at does."""

    copy: str
    write: str
    x: int
    y: int
    indices: tuple
    out: int
    set: bool


@dataclass(frozen=True)
class NonZero:
    """``out`` (an int64 matrix of ``src``'s rank rows) holds the indices of the non-zero
    elements of ``src`` in C order, one row per dimension, as numpy.nonzero gives them
    stacked; its length is known only once ``src`` has been read (a first pass counts)."""

    src: int
    out: int


@dataclass(frozen=True)
class CumOp:
    """``out`` = the running sum (``add``) or product (``mul``) of ``src`` along ``axis`` (of
    ``src`` flattened in C order when ``axis`` is None), accumulated in ``out``'s dtype in
    order, as numpy.cumsum and cumprod do."""

    src: int
    out: int
    axis: object
    mode: str


@dataclass(frozen=True)
class ArgSort:
    """``out`` (int64, ``src``'s shape, C-contiguous) holds, for each row of ``src`` along
    its last axis, the positions that sort the row: ascending, equal values in their
    order, NaN last (numpy.argsort(kind="stable")); see codegen/sorting.py. ``scratch``
    (uint64, 1-d) is the sort's working memory, allocated by the step and read by none."""

    src: int
    out: int
    scratch: int


@dataclass(frozen=True)
class Check:
    """``out`` is ``src`` after checking that each 0-d boolean buffer of ``conditions`` is
    true; one that is not bails (the node-by-node path raises the error)."""

    src: int
    conditions: tuple
    out: int


@dataclass(frozen=True)
class HostCall:
    """``outputs = callable(*inputs)``: a node no other step expresses, run by calling back
    into Python (the table's ``callable``, a function of arrays returning the list of its
    outputs). The inputs are passed as arrays (views of the entry's buffers, kept alive by
    their root array); each output must be exactly an ndarray of the buffer's dtype
    object, rank and static sizes, aligned, or the call bails, as it does when the
    callable raises (the node-by-node path then raises the error). The outputs are held
    as array objects (they may share memory with the inputs)."""

    callable: str
    inputs: tuple
    outputs: tuple


@dataclass(frozen=True)
class LoopOutput:
    """One output of a ``Loop`` (the kinds of a Scan's outputs, scan_module/op.py).

    ``kind`` 'history': ``out`` holds ``init`` (``n_back`` rows) then one row per step;
    'final': ``out`` holds the last state only (``init`` is the first); 'stacked': ``out``
    stacks one row per step (no ``init``). ``taps``: ``(tap, body buffer)`` pairs, the
    body buffer being the state at offset ``tap`` (negative) before the step. ``value``:
    the body buffer holding the step's new value, written by a body step that allocates
    it and read by no other output (a 'final' one is moved into the state, not copied).
    ``copy``: a kernel copying elements of ``value``'s dtype and rank; ``init_copy`` (a
    'history' output) one of ``out``'s rank, for the initial block."""

    kind: str
    init: object
    n_back: int
    taps: tuple
    value: int
    out: int
    copy: str
    init_copy: str = ""


@dataclass(frozen=True)
class Loop:
    """A Scan run natively: ``body`` (steps over buffers of their own) runs ``n_steps`` (a
    0-d integer buffer) times. ``sequences``: ``(outer, body)`` buffer pairs, the body
    buffer being row ``t`` of the outer one at step ``t``; ``bindings``: ``(outer, body)``
    pairs bound once (non-sequences); ``outputs``: one ``LoopOutput`` each. A negative
    count, a sequence shorter than the count, an initial block of the wrong length or a
    step value of another shape than its state bails. With a 'stacked' output a count
    of 0 bails (the shape of an empty result is not known natively). ``stop``: the body
    buffer (0-d) holding a 'while' loop's condition, or None: after a step where it is
    nonzero the loop ends, and the 'history' and 'stacked' outputs hold only the rows of
    the steps that ran."""

    n_steps: int
    sequences: tuple
    bindings: tuple
    outputs: tuple
    body: tuple
    stop: int | None = None


STEP_TYPES = (Elementwise, Reduce, Gemm, DimShuffle, SumToShape, SumToDims, ShapeOf, Index, Fill, MakeVector,
              Reshape, SpecifyShape, ARange, Join, IncSubtensor, ArgReduce, Gather, Scatter, CumOp, Check,
              HostCall, Loop, NonZero, ArgSort)
#: steps whose output is a view of (shares memory with) their first input
VIEW_STEPS = (DimShuffle, SumToShape, SumToDims, Index, SpecifyShape, Check)


@dataclass(frozen=True)
class Schedule:
    """One compiled function.

    ``args`` are the buffers bound to the entry's arguments, in order;
    ``shared`` the buffers read from shared variables' storage cells (one-item
    lists the caller supplies, in order); ``constants`` ``(buffer, key)`` pairs
    bound to constant arrays the caller supplies; ``steps`` run in order;
    ``results`` are each written by an allocating step and distinct. The first
    ``n_outputs`` results are returned (the array itself when ``single``, else a
    list); result ``n_outputs + j`` becomes the value of updated cell ``j``,
    stored only once every step has succeeded. ``literals`` maps the 0-d integer
    constants (indices, slice bounds, sizes) to their values, which the renderers
    write into the code instead of reading them from the table.
    """

    buffers: tuple
    args: tuple
    shared: tuple
    constants: tuple
    steps: tuple
    results: tuple
    n_outputs: int
    single: bool
    literals: tuple = ()

    def writer(self) -> dict:
        """buffer -> the index of the step that writes it."""
        out = {}
        for k, step in enumerate(self.steps):
            for b in written(step):
                out[b] = k
        return out


def read(step) -> list:
    """The buffers ``step`` reads."""
    if isinstance(step, (Elementwise, Reduce, HostCall)):
        return list(step.inputs)
    if isinstance(step, Gemm):
        return [step.a, step.b]
    if isinstance(step, SumToShape):
        return [step.src, step.like]
    if isinstance(step, SumToDims):
        return [step.src, *step.dims]
    if isinstance(step, Index):
        return [step.src] + [p for item in step.items for p in item[1:] if p is not None]
    if isinstance(step, Fill):
        return [step.value, *step.dims]
    if isinstance(step, MakeVector):
        return list(step.items)
    if isinstance(step, Reshape):
        return [step.src, step.shape]
    if isinstance(step, ARange):
        return [step.start, step.stop, step.step]
    if isinstance(step, Join):
        return list(step.inputs)
    if isinstance(step, Check):
        return [step.src, *step.conditions]
    if isinstance(step, Gather):
        return [step.src, *step.indices]
    if isinstance(step, Scatter):
        return [step.x, step.y, *step.indices]
    if isinstance(step, IncSubtensor):
        return [step.x, step.y] + [p for item in step.items for p in item[1:] if p is not None]
    if isinstance(step, Loop):
        return ([step.n_steps] + [outer for outer, _ in step.sequences + step.bindings]
                + [o.init for o in step.outputs if o.init is not None])
    return [step.src]


def written(step) -> list:
    """The buffers ``step`` writes (or defines, for a view)."""
    if isinstance(step, (Elementwise, HostCall)):
        return list(step.outputs)
    if isinstance(step, Reduce):
        return [step.output]
    if isinstance(step, Loop):
        return [o.out for o in step.outputs]
    if isinstance(step, ArgSort):
        return [step.out, step.scratch]
    return [step.out]


def walk(steps):
    """Every step of ``steps``, those of loop bodies included (each after its loop)."""
    for step in steps:
        yield step
        if isinstance(step, Loop):
            yield from walk(step.body)


def hands_large_calls_over(schedule) -> bool:
    """Whether a call on large arguments should leave the entry for the node-by-node path,
    which splits elementwise kernels and reductions across the cores: when the schedule has
    such steps and no loop (whose steps that path would run from Python)."""
    return (any(isinstance(step, (Elementwise, Reduce)) for step in schedule.steps)
            and not any(isinstance(step, Loop) for step in schedule.steps))


def writers(steps) -> dict:
    """buffer -> the step that writes it, over ``steps`` and the bodies of their loops."""
    return {b: step for step in walk(steps) for b in written(step)}


def loop_bound(step) -> list:
    """The body buffers a Loop binds itself (sequence rows, non-sequences, state taps)."""
    return [b for _, b in step.sequences + step.bindings] + [b for o in step.outputs for _, b in o.taps]


#: buffers of at most this many bytes with static sizes live on the entry's stack
STACK_BYTES = 256


@dataclass
class Lifetimes:
    """Where each buffer's memory comes from and when it is released, for every renderer.

    ``root[b]``: the buffer whose memory ``b`` uses (itself, or the source of a view or
    Reshape). ``storage[b]``: 'result' (returned), 'object' (an array object the entry
    holds a reference to: a HostCall's output, or a buffer whose memory a HostCall reads,
    so that what the call returns may keep it alive), 'stack' (static and small) or
    'heap'. ``frees[k]``: heap and object buffers whose last reader is step ``k`` (an
    object is released, not freed). ``copy_frees[k]``: Reshape outputs whose contiguous
    copy (made when their source is not contiguous) dies there. ``in_place``: the
    IncSubtensor steps that update their ``x`` where it lies instead of a copy of it
    (``x`` is a heap buffer of the entry's own that nothing reads afterwards: the output
    takes over its memory, and ``root[out]`` is ``x``'s root). ``loops``: for each Loop
    step, the Lifetimes of its body within one step (its ``root`` and ``storage`` are
    these, shared).
    """

    root: dict
    storage: dict
    frees: list
    copy_frees: list
    in_place: frozenset = frozenset()
    loops: dict = None


def plan_lifetimes(schedule) -> Lifetimes:
    """The Lifetimes of ``schedule``: a buffer lives from its writer to its last reader, a
    view as long as its root; arguments, shared values, constants and results are kept."""
    s = schedule
    keep = set(s.args) | set(s.shared) | {b for b, _ in s.constants} | set(s.results)
    root = {b: b for b in list(s.args) + list(s.shared) + [b for b, _ in s.constants]}
    for step in s.steps:
        for b in written(step):
            root[b] = root[step.src] if isinstance(step, VIEW_STEPS + (Reshape,)) else b
    objects = {b for step in s.steps if isinstance(step, HostCall) for b in step.outputs}
    objects |= {root[b] for step in s.steps if isinstance(step, HostCall) for b in step.inputs}
    storage = {b: "object" if b in objects and b not in keep else _storage(s, b)
               for b in range(len(s.buffers))}
    loops = {}
    for k, step in enumerate(s.steps):
        if isinstance(step, Loop):
            for o in step.outputs:  # allocated inside the loop's scope, used after it
                storage[o.out] = "heap" if storage[o.out] == "stack" else storage[o.out]
            loops[k] = _plan_loop(s, step, root, storage)
    in_place = _in_place_updates(s, root, storage, keep)
    last = {}
    for k, step in enumerate(s.steps):
        for b in read(step):
            last[root[b]] = k
        for b in written(step):
            if k in in_place:
                root[b] = root[step.x]
            elif isinstance(step, VIEW_STEPS + (Reshape,)):
                root[b] = root[step.src]  # again: the source may be an in-place update
            last.setdefault(root[b], k)
    frees = [[] for _ in s.steps]
    for b, k in sorted(last.items()):
        if b not in keep and storage[b] in ("heap", "object"):
            frees[k].append(b)
    copy_frees = [[] for _ in s.steps]
    for step in s.steps:
        if isinstance(step, Reshape):
            copy_frees[last[root[step.out]]].append(step.out)
    return Lifetimes(root, storage, frees, copy_frees, frozenset(in_place), loops)


def _plan_loop(schedule, step, root, storage) -> Lifetimes:
    """The Lifetimes of ``step``'s body over one step, its buffers' roots and storage merged
    into ``root`` and ``storage``. Buffers from outside the body and those the loop binds
    are kept; the step's values are kept too (the loop copies or moves them after the
    body), each a heap buffer when it is a 'final' state's (moved into the state, which
    is a heap buffer of the loop's own), else as small ones may be, on the stack."""
    body_written = {b for st in walk(step.body) for b in written(st)}
    bound = {b for st in walk([step]) if isinstance(st, Loop) for b in loop_bound(st)}
    outside = bound | {b for st in step.body for b in read(st)} - body_written
    values = tuple(o.value for o in step.outputs) + ((step.stop,) if step.stop is not None else ())
    body = Schedule(schedule.buffers, tuple(sorted(outside)), (), (), step.body, values, len(values), False)
    life = plan_lifetimes(body)
    if step.stop is not None:
        life.storage[step.stop] = _scratch(schedule.buffers[step.stop])
    for o in step.outputs:
        life.storage[o.value] = "heap" if o.kind == "final" else _scratch(schedule.buffers[o.value])
        for _, b in o.taps:
            life.storage[b] = "heap" if o.kind == "final" else "view"
    for _, b in step.sequences + step.bindings:
        life.storage[b] = "view"
    for b in body_written | bound:
        root[b] = life.root.get(b, b)
        storage[b] = life.storage[b]
    life.root, life.storage = root, storage
    return life


def _in_place_updates(s, root, storage, keep) -> set:
    """The IncSubtensor steps that may update ``x`` in place: ``x`` is read by that step
    alone (nothing views it) and it is, or updates in place, a heap buffer of the
    entry's own (not an argument, shared value, constant or result) that ``y`` and the
    indices do not share memory with; the output is a heap buffer too."""
    readers = {}
    for step in s.steps:
        for b in set(read(step)):
            readers[b] = readers.get(b, 0) + 1
    home = dict(root)  # buffer -> the buffer whose memory it ends up in
    in_place, updated = set(), set()
    for k, step in enumerate(s.steps):
        if not isinstance(step, IncSubtensor):
            continue
        x, out = step.x, step.out
        indices = [p for item in step.items for p in item[1:] if p is not None]
        if ((x == root[x] or x in updated) and readers.get(x) == 1
                and home[x] not in keep and storage[home[x]] == "heap"
                and storage[out] == "heap" and out not in keep
                and all(home[b] != home[x] for b in [step.y] + indices)):
            in_place.add(k)
            updated.add(out)
            home[out] = home[x]
    return in_place


def _storage(schedule, b) -> str:
    if b in schedule.results:
        return "result"
    return _scratch(schedule.buffers[b])


def _scratch(buf) -> str:
    """Where a buffer the entry computes and does not return lives: 'stack' or 'heap'."""
    if all(isinstance(n, int) for n in buf.shape):
        if int(np.prod(buf.shape, dtype=np.int64)) * np.dtype(buf.dtype).itemsize <= STACK_BYTES:
            return "stack"
    return "heap"
