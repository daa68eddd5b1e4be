"""Turns rendered LLVM IR into native code in this process, through llvmlite's MCJIT.

One execution engine serves the whole process. A module is optimised at speed
level 3 for the host CPU (vectorisation on), emitted as position-independent
object code, stored in the on-disk cache under a key that covers the IR text, the
LLVM version, the CPU name and features and the flags, and loaded into the engine.
A module already loaded in this process is not loaded twice.

Before any of that, a module is looked up among the shared libraries linked from
such object code (``shared_lib``): a hit loads it with ctypes, and the process
never imports llvmlite's binding. A module the engine loads is queued to be linked.
"""

from __future__ import annotations

import sys
import threading

import llvmlite

from theanine.codegen import shared_lib
from theanine.compile.cache import DiskCache, cache_key

OPT_LEVEL = 3
#: how the code is generated besides the level, part of every cache key: position-independent
#: code of the small code model (linkable into a shared library; MCJIT loads it too, where the
#: large model's position-independent relocations came out wrong), no loop-unroll pass
CODEGEN = "pic-small-nounroll"
_lock = threading.Lock()
_state = {}
_libraries = {}  # library key -> {symbol: address} of the shared libraries loaded here
_jitted = set()  # library keys of the modules the engine loaded here instead
llvm = None  # llvmlite.binding, imported on first use


def _binding():
    global llvm
    if llvm is None:
        import llvmlite.binding
        llvm = llvmlite.binding
    return llvm


def _engine():
    """The process-wide (target machine, execution engine), created on first use."""
    if not _state:
        _binding()
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        triple = llvm.get_process_triple()
        cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features().flatten()
        target = llvm.Target.from_triple(triple)
        make_tm = lambda: target.create_target_machine(  # noqa: E731
            cpu=cpu, features=features, opt=OPT_LEVEL, reloc="pic", codemodel="small", jit=True)
        engine = llvm.create_mcjit_compiler(llvm.parse_assembly(""), make_tm())
        _state.update(tm=make_tm(), engine=engine, cpu=cpu, features=features, triple=triple,
                      loaded={})
    return _state


def target_identity() -> tuple:
    """What, besides the IR, determines the object code: versions, CPU, flags."""
    s = _engine()
    return ("llvm", llvmlite.__version__, ".".join(map(str, llvm.llvm_version_info)), s["triple"],
            s["cpu"], s["features"], f"O{OPT_LEVEL}", CODEGEN)


def optimize(ir_text: str) -> llvm.ModuleRef:
    """Parse, verify and optimise ``ir_text``; returns the optimised module."""
    s = _engine()
    module = llvm.parse_assembly(ir_text)
    module.verify()
    pto = llvm.create_pipeline_tuning_options(speed_level=OPT_LEVEL)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    pto.loop_interleaving = True
    # The unroll pass adds no speed the vectoriser's interleaving has not already given
    # (benchmarks B2 to B10 measured the same within noise) and costs a third of the
    # compile time: 0.56 s against 0.42 s for the MLP training step.
    pto.loop_unrolling = False
    pass_builder = llvm.create_pass_builder(s["tm"], pto)
    pass_builder.getModulePassManager().run(module, pass_builder)
    return module


def optimized_ir(ir_text: str) -> str:
    """The LLVM IR of ``ir_text`` after optimisation."""
    with _lock:
        return str(optimize(ir_text))


def assembly(ir_text: str) -> str:
    """The host assembly of ``ir_text``."""
    with _lock:
        return _engine()["tm"].emit_assembly(optimize(ir_text))


#: ELF ``e_machine`` of the 64-bit architectures whose object header is known without a probe
_ELF_MACHINES = {"x86_64": 62, "aarch64": 183, "ppc64le": 21, "riscv64": 243, "s390x": 22}


def _own_header() -> tuple:
    """(first 6 bytes, ``e_machine`` bytes) of the object files this process emits: for ELF
    on the architectures above, from the ELF format itself; else from an empty module
    emitted once (which costs more than a millisecond)."""
    arch = _engine()["triple"].split("-")[0]
    if sys.platform.startswith("linux") and arch in _ELF_MACHINES and sys.maxsize > 2 ** 32:
        data = b"\x01" if sys.byteorder == "little" else b"\x02"
        return b"\x7fELF\x02" + data, _ELF_MACHINES[arch].to_bytes(2, sys.byteorder)
    probe = _engine()["tm"].emit_object(llvm.parse_assembly(""))
    return probe[:6], probe[18:20]


def _loadable(obj: bytes) -> bool:
    """Whether ``obj`` is an object file of this machine's kind (checked by its ELF header:
    class, byte order and machine must be those of an object this process emits)."""
    own = _state.get("elf_header")
    if own is None:
        own = _state["elf_header"] = _own_header()
    return obj[:6] == own[0] and obj[18:20] == own[1]


def compile_ir(ir_text: str, symbols, cache: DiskCache | None = None) -> dict:
    """Native addresses of ``symbols`` defined by ``ir_text``: from a shared library linked
    earlier, else compiled (or taken from the cache) and loaded into the engine."""
    with _lock:
        cache = cache if cache is not None else DiskCache()
        library = shared_lib.library_key(ir_text, llvmlite.__version__, f"O{OPT_LEVEL}", CODEGEN)
        if library is not None and library not in _jitted:  # a module is loaded once
            known = _libraries.get(library) or shared_lib.load(library, symbols, cache)
            if known is not None and all(name in known for name in symbols):
                _libraries[library] = known
                return {name: known[name] for name in symbols}
        return _from_engine(ir_text, symbols, cache, library)


def _from_engine(ir_text, symbols, cache, library) -> dict:
    s = _engine()
    key = cache_key("llvm-object", ir_text, *target_identity())
    loaded = s["loaded"].get(key)
    if loaded is None:
        obj = cache.get("llvm", key)
        if obj is None or not _loadable(obj):  # a foreign object would abort inside LLVM
            obj = s["tm"].emit_object(optimize(ir_text))
            cache.put("llvm", key, obj)
        s["engine"].add_object_file(llvm.ObjectFileRef.from_data(obj))
        s["engine"].finalize_object()
        loaded = s["loaded"][key] = {}
        if library is not None:
            _jitted.add(library)
            shared_lib.link_later(library, obj, cache)
    out = {}
    for name in symbols:
        if name not in loaded:
            addr = s["engine"].get_function_address(name)
            if not addr:
                raise RuntimeError(f"JIT: symbol {name!r} was not found in the compiled module")
            loaded[name] = addr
        out[name] = loaded[name]
    return out
