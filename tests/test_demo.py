"""The demo tells the truth: its rows against independent references (SciPy's AAA refitted
here, closed-form pole counts and PLE), strict JSON, and a CLI that refuses bad arguments before
any work."""
import json
import math
import warnings

import numpy as np
import pytest

from zeroproof_nb import cli
from zeroproof_nb.cli import join_negative_lists, main
from zeroproof_nb.demo import (
    FAR_FRACTION,
    MATCH_FRACTION,
    NEAR_BAND,
    check_demo_arguments,
    run_demo,
)
from zeroproof_nb.problems import make_problem

ROWS_NOISY = ["start", "trained", "fit_rational", "aaa", "aaa_noise", "eps_rational", "polynomial"]


def test_strict_parser_rejects_nonfinite_tokens():
    with pytest.raises(AssertionError, match="NaN"):
        _strict('{"a": NaN}')
    with pytest.raises(AssertionError, match="Infinity"):
        _strict('[-Infinity]')


def _no_nonfinite(token):
    raise AssertionError(f"non-standard JSON token {token!r}")


def _strict(text):
    return json.loads(text, parse_constant=_no_nonfinite)


def _data(poles, residues, domain, noise, n, seed):
    """The demo's samples, rebuilt as the README defines them."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(domain[0], domain[1], n)
    prob = make_problem(poles, residues, domain=domain)
    return x, prob.target(x) * (1.0 + noise * rng.standard_normal(n)), prob


def _closed_form_counts(found, true, width):
    """Matched / extra / PLE when the match tolerance is below half the gap between true poles:
    each true pole takes its nearest found pole within the tolerance, or costs the width."""
    tol = MATCH_FRACTION * width
    found = np.asarray(found, dtype=float)
    costs, matched = [], 0
    for t in true:
        d = np.abs(found - t).min() if found.size else math.inf
        if d <= tol:
            matched += 1
            costs.append(d)
        else:
            costs.append(width)
    return matched, found.size - matched, float(np.mean(costs))


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    rc = main(["demo", "--epochs", "3", "--seed", "1", "--n-pool", "1500", "--out", str(out),
               "--log-every", "1"])
    assert rc == 0
    return out


def test_demo_summary_is_strict_json_with_every_row(noisy, capsys):
    s = _strict((noisy / "summary.json").read_text())  # raises on NaN / Infinity tokens
    _strict((noisy / "history.json").read_text())
    assert list(s["models"]) == ROWS_NOISY
    assert s["problem"]["noise"] == 0.01 and s["problem"]["n_pool"] == 1500
    for name, m in s["models"].items():
        assert {"matched", "missed", "extra", "ple", "far_mse", "near_mse", "time_s",
                "poles", "bucket_mse"} <= set(m), name
        assert m["matched"] + m["missed"] == 2
        assert m["matched"] + m["extra"] == len(m["poles"])
        assert m["time_s"] > 0
    assert s["models"]["aaa_noise"]["rtol"] == 0.01 and s["models"]["aaa"]["rtol"] is None


def test_demo_counts_and_ple_match_the_closed_form(noisy):
    s = _strict((noisy / "summary.json").read_text())
    true = sorted(s["problem"]["poles"])
    width = 2.0
    assert s["definitions"]["match_tol"] == MATCH_FRACTION * width
    for name, m in s["models"].items():
        matched, extra, ple = _closed_form_counts(m["poles"], true, width)
        assert (m["matched"], m["extra"]) == (matched, extra), name
        assert m["ple"] == pytest.approx(ple, rel=1e-12, abs=1e-15), name
    # the polynomial has no pole: both true poles missed, each costing the domain width
    poly = s["models"]["polynomial"]
    assert (poly["matched"], poly["missed"], poly["extra"]) == (0, 2, 0)
    assert poly["ple"] == width and poly["max_pole_error"] is None


def test_demo_aaa_rows_equal_scipy_refitted_here(noisy):
    from scipy.interpolate import AAA

    s = _strict((noisy / "summary.json").read_text())
    x, y, prob = _data((0.3, -0.55), (1.0, -2.0), (-1.0, 1.0), 0.01, 1500, 1)
    grid = np.linspace(-1, 1, 4001)
    dist = np.min(np.abs(grid[:, None] - np.array([0.3, -0.55])[None, :]), axis=1)
    far = grid[dist > FAR_FRACTION * 2.0]
    for key, rtol in (("aaa", None), ("aaa_noise", 0.01)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            r = AAA(x, y) if rtol is None else AAA(x, y, rtol=rtol)
        p = r.poles()
        real = p[np.abs(p.imag) <= 1e-8 * np.maximum(1, np.abs(p.real))].real
        real = np.sort(real[(real >= -1) & (real <= 1)])
        m = s["models"][key]
        np.testing.assert_allclose(m["poles"], real, rtol=0, atol=1e-12)
        mse = float(np.mean((r(far).real - prob.target(far)) ** 2))
        assert m["far_mse"] == pytest.approx(mse, rel=1e-9)
    # AAA at its default tolerance fits the noise: dozens of spurious real poles
    assert s["models"]["aaa"]["extra"] >= 10


def test_demo_far_near_points_as_defined(noisy):
    s = _strict((noisy / "summary.json").read_text())
    d = s["definitions"]
    n_far = int(d["far"].split("(")[1].split()[0])
    n_near = int(d["near"].split("(")[-1].split()[0])
    grid = np.linspace(-1, 1, 4001)
    dist = np.min(np.abs(grid[:, None] - np.array([0.3, -0.55])[None, :]), axis=1)
    assert n_far == int(np.sum(dist > FAR_FRACTION * 2.0))
    assert n_near == 2 * 2 * 200  # 200 log-spaced distances per side of each pole
    assert NEAR_BAND == (1e-3, 5e-2)


def test_demo_figure_or_hint(noisy, capsys):
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # the figure needs the "plot" extra; the demo says how to get it
        assert not (noisy / "demo.png").exists()
    else:
        assert (noisy / "demo.png").stat().st_size > 10_000


def test_demo_clean_case_finds_poles_to_1e_8():
    s = run_demo(noise=0.0, epochs=3, n_pool=1500, out=None, verbose=False)
    assert "aaa_noise" not in s["models"]  # its tolerance would be the default one
    for name in ("start", "trained", "fit_rational", "aaa"):
        m = s["models"][name]
        assert (m["matched"], m["missed"], m["extra"]) == (2, 0, 0), name
        assert m["max_pole_error"] < 1e-8, name
        assert m["far_mse"] < 1e-12, name
    # the ε-rational's Q vanishes near the poles, but |Q + ε sign Q| >= ε caps it near them
    eps = s["models"]["eps_rational"]
    assert eps["near_mse"] > 1e3 * s["models"]["trained"]["near_mse"]
    # the trained model never ends worse than its start on the held-out split
    held = s["models"]["trained"]["held_out"]
    assert held["final"] <= held["start"]


# the CLI's refusals, one test per misuse: tests/test_cli.py


def test_cli_accepts_lists_that_start_with_a_minus(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("zeroproof_nb.demo.run_demo", lambda **k: seen.update(k))
    assert main(["demo", "--poles", "-0.37,0.61", "--residues", "-1,2", "--domain", "-2,2",
                 "--noise", "0", "--out", str(tmp_path)]) == 0
    assert seen["poles"] == [-0.37, 0.61] and seen["residues"] == [-1.0, 2.0]
    assert seen["domain"] == (-2.0, 2.0) and seen["noise"] == 0.0
    # the = form and a plain negative number keep working
    assert main(["demo", "--poles=-0.5", "--residues", "-3", "--out", str(tmp_path)]) == 0
    assert seen["poles"] == [-0.5] and seen["residues"] == [-3.0]


def test_join_negative_lists():
    assert join_negative_lists(["demo", "--poles", "-0.37,0.61", "--seed", "1"]) == [
        "demo", "--poles=-0.37,0.61", "--seed", "1"]
    assert join_negative_lists(["--domain", "-.5,1"]) == ["--domain=-.5,1"]
    # a following option, a positive list and anything after "--" are left alone
    assert join_negative_lists(["--poles", "--quiet"]) == ["--poles", "--quiet"]
    assert join_negative_lists(["--poles", "0.3,-0.5"]) == ["--poles", "0.3,-0.5"]
    assert join_negative_lists(["--", "--poles", "-1"]) == ["--", "--poles", "-1"]
    assert join_negative_lists(["--noise", "-1"]) == ["--noise", "-1"]


def test_run_demo_validates_before_work(tmp_path):
    with pytest.raises(ValueError, match="device"):
        run_demo(device="tpu", out=None, verbose=False)
    with pytest.raises(ValueError, match="noise"):
        run_demo(noise=-0.1, out=None, verbose=False)
    with pytest.raises(TypeError, match="noise"):
        run_demo(noise="1%", out=None, verbose=False)
    with pytest.raises(ValueError, match="epochs"):
        run_demo(epochs=-1, out=None, verbose=False)
    with pytest.raises(ValueError, match="edge"):
        run_demo(poles=(0.3, 0.99), residues=(1.0, 1.0), out=None, verbose=False)
    with pytest.raises(ValueError, match="distinct"):
        run_demo(poles=(0.3, 0.3), residues=(1.0, 1.0), out=None, verbose=False)
    with pytest.raises(ValueError, match="out"):
        (tmp_path / "f").write_text("")
        run_demo(out=tmp_path / "f", verbose=False)
    args = check_demo_arguments(poles=[-0.37, 0.61], residues=[1, 2], domain=[-1, 1], noise=0,
                                out=tmp_path / "new" / "dir")
    assert args["poles"] == (-0.37, 0.61) and args["domain"] == (-1.0, 1.0)
    assert not (tmp_path / "new").exists()  # checked, not created
    assert cli.build_parser().parse_args(["demo"]).noise == 0.01


def test_demo_writes_null_for_a_nonfinite_mse_and_counts_it(tmp_path, monkeypatch):
    import zeroproof_nb.demo as demo
    from zeroproof_nb.problems import fit_aaa

    class InfAtFirstPoint:
        """An AAA peer whose prediction is +inf at the first test point of every call."""

        def __init__(self, peer):
            self.peer, self.approx, self.domain = peer, peer.approx, peer.domain
            self.imag_tol, self.n_terms = peer.imag_tol, peer.n_terms

        def predict(self, x):
            y = self.peer.predict(x)
            y[0] = np.inf
            return y

        def poles(self):
            return self.peer.poles()

    monkeypatch.setattr(demo, "fit_aaa", lambda x, y, domain, rtol: InfAtFirstPoint(
        fit_aaa(x, y, domain, rtol=rtol, max_terms=12)))
    s = run_demo(epochs=2, n_pool=600, out=tmp_path, verbose=False, plot=False)
    for key in ("aaa", "aaa_noise"):
        m = s["models"][key]
        assert m["far_mse"] is None and m["near_mse"] is None
        assert m["n_nonfinite_far"] == 1 and m["n_nonfinite_near"] == 1
    assert s["models"]["start"]["n_nonfinite_far"] == 0
    written = _strict((tmp_path / "summary.json").read_text())
    assert written["models"]["aaa"]["far_mse"] is None
    assert "null" in written["definitions"]["null"]
    # the trained row is the default Trainer: Levenberg-Marquardt for a TRRational
    assert written["models"]["trained"]["optimizer"] == "LevenbergMarquardt"
