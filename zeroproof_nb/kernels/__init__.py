"""Numba kernels: arrays in, arrays out; no classes, no Python objects.

Conventions (see DESIGN.md): per-point arithmetic is written once as an ``@njit`` function that
CUDA kernels can call as a device function; CPU loops are thin ``prange`` wrappers around it.
Kernels assume validated input; validation lives in the Python layer.
"""
