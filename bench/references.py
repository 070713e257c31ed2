"""NumPy references shared by the benchmarks: :mod:`zeroproof_nb.bench_references` (also used
by ``zeroproof-nb bench``), re-exported under the names the bench files use."""
from __future__ import annotations

from zeroproof_nb.bench_references import (
    numpy_adam_epoch,
    numpy_eval,
    numpy_loss_and_grad,
    numpy_weights,
    parallel_copy,
)

__all__ = ["numpy_adam_epoch", "numpy_eval", "numpy_loss_and_grad", "numpy_weights",
           "parallel_copy"]
