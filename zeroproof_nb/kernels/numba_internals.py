"""Every use of numba / llvmlite internals in the package, in one place.

Tested with numba 0.68.1 and llvmlite 0.50.0 (``pyproject.toml`` pins numba below 0.69); a new
numba release may change any of what follows, so check this module first when upgrading:

* :func:`float_bits`, :func:`bits_float`, :func:`store_records8`: ``numba.extending.intrinsic``
  functions that emit llvmlite IR (bit casts; an 8-record byte shuffle and unaligned store);
* :class:`FunctionPointer`, :class:`LazyPointer`, :func:`memoised_pointer`,
  :func:`function_at`, :func:`from_address`:
  first-class functions
  rebuilt from the int64 address of a compiled overload's C wrapper (``cgutils`` struct
  proxies of ``types.FunctionType``, ``CompileResult.library.get_pointer_to_function``);
* :func:`jit_unique`: ``njit`` under a qualname of its own, relying on numba naming a
  function's disk-cache index after its qualname;
* :func:`disk_cache_index`: the path of a dispatcher's disk-cache index (``Dispatcher._cache``);
* :data:`NO_NRT`: the private ``_nrt=False`` compile option;
* :func:`tuple_setitem`: ``numba.cpython.unsafe.tuple.tuple_setitem`` (register sums).

All of these are CPU-only mechanisms; CUDA device code must not depend on them. Under
``NUMBA_DISABLE_JIT`` (the kernels run as Python, as in the CUDA simulator's CPU references) a
:class:`FunctionPointer`'s address is a key of a table of the Python functions, and the
functions of :func:`from_address` look it up there.
"""
from __future__ import annotations

import types as pytypes

import numba
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.cpython.unsafe.tuple import tuple_setitem
from numba.extending import intrinsic

__all__ = [
    "FunctionPointer",
    "LazyPointer",
    "NO_NRT",
    "bits_float",
    "disk_cache_index",
    "float_bits",
    "from_address",
    "function_at",
    "memoised_pointer",
    "jit_unique",
    "store_records8",
    "tuple_setitem",
]

#: compile option: no NRT (numba would otherwise update, with atomic operations, the reference
#: count of every array argument and slice on every call)
NO_NRT = dict(_nrt=False)


@intrinsic
def float_bits(typingctx, x):
    """The IEEE bit pattern of a float64 as an int64 (a bit cast; vectorises)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(x), codegen


@intrinsic
def bits_float(typingctx, b):
    """Inverse of :func:`float_bits`."""
    if b != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(b), codegen


def jit_unique(py_func, key, *args, **options):
    """``njit`` a specialisation under a qualname derived from ``key``.

    numba names a function's disk-cache index after its qualname and assigns data-file numbers
    per index; closures of one factory would share one index, and two processes adding
    different specialisations at once could then overwrite each other's data file under a
    stale index (a wrong kernel loaded later). One index per specialisation avoids that.
    """
    tag = "_".join(str(int(k)) if isinstance(k, (bool, int, np.integer)) else str(k) for k in key)
    func = pytypes.FunctionType(py_func.__code__, py_func.__globals__, py_func.__name__,
                                py_func.__defaults__, py_func.__closure__)
    func.__qualname__ = f"{py_func.__name__}__{tag}"
    func.__doc__ = py_func.__doc__
    func.__module__ = py_func.__module__
    return njit(*args, **options)(func)


#: NUMBA_DISABLE_JIT: the Python functions behind the "addresses" of :class:`FunctionPointer`
_PYTHON_FUNCTIONS: dict = {}


def disk_cache_index(dispatcher):
    """Path of the disk-cache index file of a ``cache=True`` dispatcher (None without a disk
    cache, or under ``NUMBA_DISABLE_JIT``). The file exists once a specialisation was saved."""
    cache = getattr(dispatcher, "_cache", None)
    cache_file = getattr(cache, "_cache_file", None)
    return None if cache_file is None else cache_file._index_path


class FunctionPointer:
    """A compiled specialisation, handed to the generic kernels by address.

    ``address`` is numba's C wrapper of the compiled overload for ``sig``; the generic kernels
    take it as a plain int64 and turn it back into a first-class function with intrinsics made
    by :func:`from_address`. An int64 argument costs nothing to type or unbox, whereas a
    first-class-function argument costs tens of microseconds of Python per call. Keeps the
    dispatcher (and so the code at ``address``) alive.
    """

    def __init__(self, dispatcher, sig):
        self.sig = sig
        self.dispatcher = dispatcher
        if numba.config.DISABLE_JIT:  # ``dispatcher`` is the Python function itself
            self.address = len(_PYTHON_FUNCTIONS) + 1
            _PYTHON_FUNCTIONS[self.address] = dispatcher
            return
        cres = dispatcher.get_compile_result(sig)
        self.address = cres.library.get_pointer_to_function(cres.fndesc.llvm_cfunc_wrapper_name)


class LazyPointer:
    """``pointer()``: the :class:`FunctionPointer` of ``dispatcher`` for ``signature()``, built
    (and so compiled, or loaded from the disk cache) on the first call, then memoised; a
    kernel only its callers' first use compiles. ``built`` says whether that happened;
    ``after_build`` (optional) runs once the pointer exists."""

    def __init__(self, dispatcher, signature, doc, after_build=None):
        self.dispatcher = dispatcher
        self.signature = signature
        self.after_build = after_build
        self.__doc__ = doc
        self._pointer = None

    @property
    def built(self):
        return self._pointer is not None

    def __call__(self):
        if self._pointer is None:
            self._pointer = FunctionPointer(self.dispatcher, self.signature())
            if self.after_build is not None:
                self.after_build()
        return self._pointer


def memoised_pointer(cache, key, signature, build):
    """``cache[key]``; on a miss, the :class:`FunctionPointer` of ``build(sig)`` (a dispatcher
    compiled for ``sig = signature()``), stored there: each variant of a specialised kernel is
    built once per process (and loaded from the disk cache after the first)."""
    f = cache.get(key)
    if f is None:
        sig = signature()
        f = cache[key] = FunctionPointer(build(sig), sig)
    return f


def function_at(fnty, addr_value, context, builder):
    """LLVM value of first-class function type ``fnty`` calling the C wrapper at ``addr``."""
    sfunc = cgutils.create_struct_proxy(fnty)(context, builder)
    null = cgutils.get_null_value(sfunc.py_addr.type)
    sfunc.c_addr = builder.inttoptr(addr_value, sfunc.c_addr.type)
    sfunc.py_addr = null
    sfunc.jit_addr = null
    return sfunc._getvalue()


def from_address(signature_for, doc):
    """An intrinsic ``f(addr, x)``: the first-class function of signature
    ``signature_for(dtype of x)`` whose C wrapper is at the int64 ``addr``."""
    if numba.config.DISABLE_JIT:
        def python_function_at(addr, x):
            return _PYTHON_FUNCTIONS[addr]

        python_function_at.__doc__ = doc
        return python_function_at

    @intrinsic
    def from_address(typingctx, addr, x):
        fnty = types.FunctionType(signature_for(numba.np.numpy_support.as_dtype(x.dtype)))

        def codegen(context, builder, signature, args):
            return function_at(fnty, args[0], context, builder)

        return fnty(addr, x), codegen

    from_address.__doc__ = doc
    return from_address


@intrinsic
def store_records8(typingctx, val, dst, values, tags, i):
    """Store 8 transreal records (value in ``val``'s dtype, then a uint8 tag; no padding) at
    byte address ``dst`` (int64): values[i:i+8] (float64 or float32, converted to the record's
    value type) and tags[i:i+8]. ``val`` only gives the record type.

    Two vector loads, one byte shuffle and one unaligned vector store (72 or 40 bytes) instead
    of 16 scalar stores at a 9- (or 5-) byte stride; LLVM picks the shuffle instructions for the
    target (a two-source byte permutation with AVX-512 VBMI)."""
    if not (isinstance(val, types.Array) and isinstance(values, types.Array)
            and isinstance(tags, types.Array)):
        return None
    rec_t = val.dtype
    floats = (types.float64, types.float32)
    if rec_t not in floats or values.dtype not in floats or tags.dtype != types.uint8:
        return None
    if dst != types.int64 or not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        _, d, vals_arr, tags_arr, idx = args
        i8 = ir.IntType(8)
        i32 = ir.IntType(32)
        src_ll = context.get_value_type(values.dtype)
        rec_ll = context.get_value_type(rec_t)
        vsize = 8 if rec_t == types.float64 else 4
        nb = 8 * vsize
        va = context.make_array(values)(context, builder, vals_arr)
        ta = context.make_array(tags)(context, builder, tags_arr)
        vptr = builder.bitcast(builder.gep(va.data, [idx]), ir.PointerType(ir.VectorType(src_ll, 8)))
        tptr = builder.bitcast(builder.gep(ta.data, [idx]), ir.PointerType(ir.VectorType(i8, 8)))
        v = builder.load(vptr, align=1)
        if src_ll != rec_ll:
            v = builder.fptrunc(v, ir.VectorType(rec_ll, 8))
        vb = builder.bitcast(v, ir.VectorType(i8, nb))
        t8 = builder.load(tptr, align=1)
        tw = builder.shuffle_vector(t8, ir.Constant(ir.VectorType(i8, 8), [0] * 8),
                                    ir.Constant(ir.VectorType(i32, nb), [min(k, 8) for k in range(nb)]))
        mask = []
        for k in range(8 * (vsize + 1)):
            r, off = divmod(k, vsize + 1)
            mask.append(r * vsize + off if off < vsize else nb + r)
        out = builder.shuffle_vector(vb, tw, ir.Constant(ir.VectorType(i32, len(mask)), mask))
        optr = builder.inttoptr(d, ir.PointerType(ir.VectorType(i8, len(mask))))
        builder.store(out, optr, align=1)
        return context.get_dummy_value()

    return types.void(val, dst, values, tags, i), codegen
