import os

import numpy as np
import pytest

# Keep hypothesis fast: numba compiles per new type signature, not per example, but CI starts cold.
try:
    from hypothesis import settings

    settings.register_profile("zp", max_examples=60, deadline=None)
    settings.register_profile("ci", max_examples=40, deadline=None)
    settings.load_profile("ci" if os.environ.get("CI") else "zp")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
