import json

import numpy as np
import pytest

from zeroproof_nb.cli import main
from zeroproof_nb.demo import run_demo


def _b01(model):
    tot = n = 0
    for b in ("B0", "B1"):
        info = model["bucket_mse"][b]
        k = info["count"] - info["n_nonreal"]
        tot += info["mse"] * k
        n += k
    return tot / n


@pytest.mark.parametrize(
    "poles,residues",
    [((0.3, -0.55), (1.0, -2.0)), ((0.95,), (0.5,)), ((-0.2, 0.6), (1.5, 1.0))],
)
def test_tr_rational_finds_poles_and_beats_eps_near_poles(poles, residues):
    s = run_demo(poles=poles, residues=residues, epochs=8, n_pool=4000, batch_size=1024,
                 out=None, verbose=False)
    tr, eps = s["models"]["tr_rational"], s["models"]["eps_rational"]
    assert len(tr["poles"]) == len(poles)
    np.testing.assert_allclose(sorted(tr["poles"]), sorted(poles), atol=1e-3)
    assert tr["ple"] < 1e-3
    assert _b01(tr) < _b01(eps)
    # the polynomial has no pole: every true pole is unmatched
    assert s["models"]["polynomial"]["ple"] == pytest.approx(1.0)


def test_demo_cli_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["demo", "--epochs", "3", "--seed", "1", "--out", str(out), "--log-every", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tr_rational" in printed and "PLE" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"problem", "models"}
    assert set(summary["models"]) == {"start", "tr_rational", "eps_rational", "polynomial", "aaa"}
    for m in summary["models"].values():
        assert set(m) >= {"ple", "poles", "bucket_mse"}
        assert set(m["bucket_mse"]) == {"B0", "B1", "B2", "B3", "B4"}
    tr = summary["models"]["tr_rational"]
    assert {"coverage", "lambda_rej", "bench"} <= set(tr)
    epochs = tr["epochs_trained"]  # Levenberg–Marquardt may converge before the 3 epochs
    assert 1 <= epochs <= 3
    assert len(tr["bench"]) == epochs and all(b["avg_step_ms"] > 0 for b in tr["bench"])
    # never worse than the start on the held-out split
    assert tr["held_out"]["final"] <= tr["held_out"]["start"]
    history = json.loads((out / "history.json").read_text())
    assert len(history["tr_rational"]["history"]["loss"]) == epochs
    assert (out / "diagnostics" / f"history_epoch_{epochs - 1}.json").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the figure needs the "plot" extra; the demo says how to get it
        assert not (out / "demo.png").exists()
        assert 'zeroproof-nb[plot]' in printed
    else:
        assert (out / "demo.png").stat().st_size > 10_000


def test_demo_rejects_bad_arguments():
    with pytest.raises(ValueError, match="device"):
        run_demo(device="tpu", out=None, verbose=False)
    with pytest.raises(SystemExit):
        main(["demo", "--poles", "0.3,0.1", "--residues", "1"])
