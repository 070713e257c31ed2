"""Counter-based random streams (SplitMix64) shared by every draw kernel, CPU and CUDA.

Every draw kernel takes a 64-bit ``key`` (drawn once per batch from the sampler's
``numpy.random.Generator``) and computes its uniforms itself: uniform number k of a batch is
SplitMix64's output k for the seed ``key`` (:func:`stream_bits`), a pure function of (key, k).
So any partition of the draws over threads gives the same indices, and no array of uniforms is
generated or stored. Scalar functions only (compiled for the CPU and as CUDA device functions).
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

# SplitMix64 (Steele, Lea & Flood 2014): state += gamma, output = mix(state)
_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S11, _S27, _S30, _S31 = np.uint64(11), np.uint64(27), np.uint64(30), np.uint64(31)
_ONE = np.uint64(1)
_INV_2_53 = 2.0 ** -53


@njit(cache=True, inline="always")
def stream_bits(key, k):
    """Random 64-bit word number k (k >= 0) of the stream ``key`` (both uint64 / int).

    SplitMix64's k-th output for the seed ``key``: ``mix(key + (k + 1)·γ)`` with
    γ = 0x9E3779B97F4A7C15 and Stafford's mix13 finaliser, all modulo 2**64. A pure function
    of (key, k): draws can be computed in any order and on any thread.
    """
    z = key + (np.uint64(k) + _ONE) * _GAMMA
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def stream_uniform(key, k):
    """Uniform double in [0, 1) number k of the stream ``key``: the top 53 bits of
    :func:`stream_bits` times 2**-53 (the construction of NumPy's ``Generator.random``)."""
    return np.float64(stream_bits(key, k) >> _S11) * _INV_2_53


@njit(cache=True, inline="always")
def stream_exponential(key, k):
    """Standard exponential number k of the stream ``key``: ``-log(1 - u)`` with u =
    :func:`stream_uniform` (1 − u is exact, in (0, 1]; the result is at most 53·ln 2)."""
    return -math.log(1.0 - stream_uniform(key, k))
