import numpy as np
import pytest
from scipy.special import log_softmax as scipy_log_softmax

from zeroproof_nb.core import TRTag
from zeroproof_nb.training.tag_loss import (
    TagClass,
    TagPredictionHead,
    adaptive_tag_weight,
    tag_cross_entropy,
)


def _reference_ce(logits, y, w=None):
    nll = -scipy_log_softmax(logits, axis=1)[np.arange(len(y)), y]
    w = np.ones(len(y)) if w is None else w
    return float(np.sum(w * nll) / len(y))


def test_tagclass():
    assert [int(c) for c in TagClass] == [0, 1, 2, 3]
    assert TagClass.from_tag(TRTag.NINF) is TagClass.NINF
    assert TagClass.PHI.to_onehot().tolist() == [0, 0, 0, 1]
    with pytest.raises(ValueError):
        TagClass.from_tag(4)


def test_cross_entropy_matches_scipy(rng):
    logits = rng.normal(size=(50, 4)) * 3
    y = rng.integers(0, 4, size=50).astype(np.uint8)
    loss, grad = tag_cross_entropy(logits, y)
    assert loss == pytest.approx(_reference_ce(logits, y), rel=1e-12)
    p = np.exp(scipy_log_softmax(logits, axis=1))
    assert grad == pytest.approx((p - np.eye(4)[y]) / 50, abs=1e-15)


def test_cross_entropy_list_of_trtag(rng):
    logits = rng.normal(size=(3, 4))
    tags = [TRTag.REAL, TRTag.PHI, TRTag.PINF]
    assert tag_cross_entropy(logits, tags)[0] == pytest.approx(_reference_ce(logits, np.array([0, 3, 1])))


def test_cross_entropy_finite_differences(rng):
    logits = rng.normal(size=(6, 4))
    y = np.array([0, 1, 2, 3, 3, 0], dtype=np.uint8)
    sw = rng.uniform(0.5, 2.0, size=6)
    cw = np.array([1.0, 2.0, 2.0, 2.0])
    loss, grad = tag_cross_entropy(logits, y, sample_weight=sw, class_weight=cw)
    assert loss == pytest.approx(_reference_ce(logits, y, sw * cw[y]))
    h = 1e-6
    fd = np.zeros_like(logits)
    for i in range(6):
        for k in range(4):
            e = np.zeros_like(logits)
            e[i, k] = h
            fd[i, k] = (
                tag_cross_entropy(logits + e, y, sw, cw)[0] - tag_cross_entropy(logits - e, y, sw, cw)[0]
            ) / (2 * h)
    assert grad == pytest.approx(fd, abs=1e-8)


def test_cross_entropy_stable_for_huge_logits():
    logits = np.array([[1e4, 0.0, -1e4, 5e3], [-1e300, 1e300, 0.0, 0.0]])
    y = np.array([2, 1], dtype=np.uint8)
    loss, grad = tag_cross_entropy(logits, y)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert loss == pytest.approx((2e4 + 0.0) / 2)


def test_perfect_and_wrong_predictions():
    good = np.array([[20.0, 0, 0, 0]])
    assert tag_cross_entropy(good, [TRTag.REAL])[0] < 1e-8
    assert tag_cross_entropy(good, [TRTag.PHI])[0] > 10


def test_cross_entropy_validation():
    with pytest.raises(ValueError, match="logits"):
        tag_cross_entropy(np.zeros((2, 3)), [0, 0])
    with pytest.raises(ValueError, match="logits"):
        tag_cross_entropy(np.array([[np.nan, 0, 0, 0]]), [0])
    with pytest.raises(ValueError, match="tags"):
        tag_cross_entropy(np.zeros((2, 4)), [0])
    with pytest.raises(ValueError, match="sample_weight"):
        tag_cross_entropy(np.zeros((2, 4)), [0, 1], sample_weight=[1.0, -1.0])
    with pytest.raises(ValueError, match="class_weight"):
        tag_cross_entropy(np.zeros((2, 4)), [0, 1], class_weight=[1.0, 1.0])
    loss, grad = tag_cross_entropy(np.zeros((0, 4)), [])
    assert loss == 0.0 and grad.shape == (0, 4)


def test_adaptive_weight_golden():
    assert adaptive_tag_weight(0.99, 0.05, 0.2) == pytest.approx(0.125)
    assert adaptive_tag_weight(1.0, 0.05, 0.2) == pytest.approx(0.2)
    assert adaptive_tag_weight(0.98, 0.05, 0.2) == 0.05
    assert adaptive_tag_weight(0.5) == 0.05
    c = np.linspace(0.981, 1.0, 20)
    w = [adaptive_tag_weight(x) for x in c]
    assert np.all(np.diff(w) > 0)


def _head_fd_grads(head, f, y, h=1e-6):
    out = []
    for p in head.parameters():
        g = np.zeros_like(p)
        it = np.nditer(p, flags=["multi_index"])
        for _ in it:
            idx = it.multi_index
            old = p[idx]
            p[idx] = old + h
            lp = head.loss_and_grad(f, y)[0]
            p[idx] = old - h
            lm = head.loss_and_grad(f, y)[0]
            p[idx] = old
            g[idx] = (lp - lm) / (2 * h)
        out.append(g)
    return out


def test_head_shapes_and_finite_difference_gradients(rng):
    head = TagPredictionHead(n_features=3, hidden_dim=5, seed=0)
    f = rng.normal(size=(7, 3))
    y = rng.integers(0, 4, size=7).astype(np.uint8)
    logits = head.forward(f)
    assert logits.shape == (7, 4)
    assert head.predict(f).dtype == np.uint8 and head.predict(f).shape == (7,)
    assert head.predict_proba(f).sum(axis=1) == pytest.approx(np.ones(7))
    loss, grads = head.loss_and_grad(f, y)
    assert loss == pytest.approx(_reference_ce(logits, y))
    assert [g.shape for g in grads] == [p.shape for p in head.parameters()]
    for g, fd in zip(grads, _head_fd_grads(head, f, y)):
        assert g == pytest.approx(fd, abs=1e-7)


def test_head_seed_reproducible_and_validates():
    a, b = TagPredictionHead(4, seed=3), TagPredictionHead(4, seed=3)
    assert all(np.array_equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="features"):
        a.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="n_features"):
        TagPredictionHead(0)


def _separable_data(rng, n=200):
    # features [1, x, x^2]; tag = REAL far from 0, PINF for x in (0, .2), NINF for x in (-.2, 0)
    x = rng.uniform(-1, 1, size=n)
    f = np.stack([np.ones(n), x, x**2], axis=1)
    y = np.where(np.abs(x) >= 0.2, 0, np.where(x > 0, 1, 2)).astype(np.uint8)
    return f, y


def test_head_learns_with_gradient_steps(rng):
    f, y = _separable_data(rng)
    head = TagPredictionHead(3, hidden_dim=16, seed=1)
    loss0 = head.loss_and_grad(f, y)[0]
    for _ in range(300):
        _, grads = head.loss_and_grad(f, y)
        for p, g in zip(head.parameters(), grads):
            p -= 0.5 * g
    loss1 = head.loss_and_grad(f, y)[0]
    assert loss1 < 0.5 * loss0
    assert np.mean(head.predict(f) == y) > 0.85


def test_head_trains_with_project_adam(rng):
    optim = pytest.importorskip("zeroproof_nb.optim")
    f, y = _separable_data(rng)
    head = TagPredictionHead(3, hidden_dim=16, seed=2)
    opt = optim.Adam(head.parameters(), lr=0.05)
    params_before = [p for p in head.parameters()]
    loss0 = head.loss_and_grad(f, y)[0]
    for _ in range(200):
        opt.step(head.loss_and_grad(f, y)[1])
    assert all(p is q for p, q in zip(params_before, head.parameters()))  # updated in place
    assert head.loss_and_grad(f, y)[0] < 0.5 * loss0
    assert np.mean(head.predict(f) == y) > 0.85
