"""The demo's --device cuda predictor (rational_eval_cuda with the layer's kernel basis, the
anchored Chebyshev denominator included) against the CPU forward: ``gpu OUT.npz`` under the
simulator writes the values, ``cpu OUT.npz`` compares (run by tests/test_cli.py)."""
import sys, numpy as np
x = np.linspace(-1, 1, 64)
params = {1: ([0.2, 1.0, -0.3, 0.1], [0.7]), 2: ([0.2, 1.0, -0.3, 0.1], [0.4, -0.6])}
if sys.argv[1] == "gpu":
    from zeroproof_nb.demo import check_demo_arguments
    from zeroproof_nb.rational_cuda import rational_eval_cuda
    assert check_demo_arguments(device="cuda")["device"] == "cuda"
    out = {}
    for dq, (th, ph) in params.items():
        basis = "chebyshev_anchored" if dq == 1 else "chebyshev"
        y = rational_eval_cuda(x, np.array(th), np.array(ph), basis=basis, domain=(-1.0, 1.0))
        out[f"v{dq}"], out[f"t{dq}"] = y["value"], y["tag"]
    np.savez(sys.argv[2], **out)
else:
    from zeroproof_nb.layers import TRRational
    got = np.load(sys.argv[2])
    for dq, (th, ph) in params.items():
        layer = TRRational(3, dq, domain=(-1.0, 1.0))
        layer.set_parameters([np.array(th), np.array(ph)])
        y = layer.forward(x)
        np.testing.assert_array_equal(got[f"t{dq}"], y["tag"])
        np.testing.assert_allclose(got[f"v{dq}"], y["value"], rtol=1e-13)
        print(layer.kernel_basis, "ok")
