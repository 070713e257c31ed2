"""DiagnosticMonitor: per-epoch and per-batch training diagnostics near poles, with JSON export.

Histories (every list in a group always has the same length, one entry per ``update``):

* ``history`` ("main"): epoch, lambda_rej, coverage_train, coverage_eval, coverage_eval_tau,
  q_min, q_mean, q_std, near_pole_ratio, loss_train, loss_eval, sample_diversity;
* ``tag_history`` ("tags"): n_real, n_pinf, n_ninf, n_phi, real_ratio;
* ``gradient_history`` ("gradients"): near_pole_mean, near_pole_max, far_pole_mean, far_pole_max,
  gradient_ratio;
* ``batch_metrics``: batch_idx, q_min, loss, n_real, n_non_real (one entry per ``update_batch``).

Scalar metrics missing from ``metrics`` carry the previous value forward (None at first, as
upstream); quantities measured from arrays (q statistics, tags, gradients) are None for an epoch
that did not supply them. Files are written only by :meth:`DiagnosticMonitor.export_diagnostics`
(called every ``export_frequency`` epochs when ``auto_export`` is on), which also creates the
export directory; the constructor touches no file.
"""
from __future__ import annotations

import logging
import numbers
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .._jsonutil import dump_strict
from .._validation import (
    as_float_array,
    check_config,
    check_counts,
    check_int,
    check_nonnegative,
    check_positive,
)
from ..core import count_tags

__all__ = ["DiagnosticConfig", "DiagnosticMonitor", "MAIN_KEYS", "TAG_KEYS", "GRADIENT_KEYS", "BATCH_KEYS"]

logger = logging.getLogger(__name__)

MAIN_KEYS = (
    "epoch", "lambda_rej", "coverage_train", "coverage_eval", "coverage_eval_tau", "q_min", "q_mean",
    "q_std", "near_pole_ratio", "loss_train", "loss_eval", "sample_diversity",
)
#: main keys taken from ``metrics`` with carry-forward (upstream's six plus sample_diversity)
CARRY_KEYS = (
    "lambda_rej", "coverage_train", "coverage_eval", "coverage_eval_tau", "loss_train", "loss_eval",
    "sample_diversity",
)
Q_KEYS = ("q_min", "q_mean", "q_std", "near_pole_ratio")
TAG_KEYS = ("n_real", "n_pinf", "n_ninf", "n_phi", "real_ratio")
GRADIENT_KEYS = ("near_pole_mean", "near_pole_max", "far_pole_mean", "far_pole_max", "gradient_ratio")
BATCH_KEYS = ("batch_idx", "q_min", "loss", "n_real", "n_non_real")
#: number of most recent P/Q snapshots written by an export (upstream's 5)
N_SNAPSHOTS_EXPORTED = 5


@dataclass
class DiagnosticConfig:
    """Settings of :class:`DiagnosticMonitor` (upstream's fields and defaults, plus ``auto_export``).

    Attributes
    ----------
    export_frequency : int >= 1 (epochs between automatic exports and P/Q snapshots)
    export_path : str (directory, created on the first export)
    track_gradients, track_tag_distribution, monitor_q_min : bool
    gradient_percentiles : list of float (accepted for compatibility; unused, as upstream)
    max_history_length : int >= 1 (lists keep only the most recent entries)
    near_pole_threshold : float > 0 (|Q| below it is "near")
    far_pole_threshold : float > 0 (|Q| above it is "far")
    q_min_warning_threshold : float >= 0 (q_min below it logs a warning)
    auto_export : bool (export from :meth:`DiagnosticMonitor.update` every export_frequency epochs)
    """

    export_frequency: int = 10
    export_path: str = "diagnostics"
    track_gradients: bool = True
    gradient_percentiles: list = field(default_factory=lambda: [25, 50, 75, 90, 95, 99])
    max_history_length: int = 1000
    near_pole_threshold: float = 0.1
    far_pole_threshold: float = 1.0
    track_tag_distribution: bool = True
    monitor_q_min: bool = True
    q_min_warning_threshold: float = 1e-4
    auto_export: bool = True

    def __post_init__(self) -> None:
        self.export_frequency = check_int(self.export_frequency, "export_frequency", minimum=1)
        self.max_history_length = check_int(self.max_history_length, "max_history_length", minimum=1)
        self.near_pole_threshold = check_positive(self.near_pole_threshold, "near_pole_threshold")
        self.far_pole_threshold = check_positive(self.far_pole_threshold, "far_pole_threshold")
        self.q_min_warning_threshold = check_nonnegative(self.q_min_warning_threshold, "q_min_warning_threshold")
        if not isinstance(self.export_path, (str, Path)):
            raise TypeError(f"export_path must be a str or Path, got {type(self.export_path).__name__}")
        self.export_path = str(self.export_path)
        self.gradient_percentiles = list(self.gradient_percentiles)


def _checked_group(group: Any, names: tuple[str, ...], name: str) -> dict[str, list]:
    """A saved history group: a dict with exactly ``names``, lists of equal length holding
    numbers (bools excluded), strings or None."""
    if not isinstance(group, dict) or set(group) != set(names):
        raise ValueError(f"{name} must be a dict with the keys {names}")
    lists = {}
    length = None
    for k in names:
        v = group[k]
        if not isinstance(v, list):
            raise TypeError(f"{name}[{k!r}] must be a list")
        if length is not None and len(v) != length:
            raise ValueError(f"{name}: every list must have the same length")
        length = len(v)
        for e in v:
            if e is not None and (isinstance(e, bool) or not isinstance(e, (numbers.Real, str))):
                raise TypeError(f"{name}[{k!r}] must hold numbers or None, got {type(e).__name__}")
        lists[k] = list(v)
    return lists


def _float_or_none(v: Any) -> float | None:
    return None if v is None else float(v)


def _to_json_scalar(v: Any) -> Any:
    """Python scalar for JSON (NumPy scalars become int/float)."""
    if isinstance(v, np.generic):
        return v.item()
    return v


def _tag_counts(tags: Any, tag_counts: Any) -> np.ndarray | None:
    """Counts (REAL, PINF, NINF, PHI) from ``tags`` or given directly; None when neither."""
    if tags is not None and tag_counts is not None:
        raise ValueError("give tags or tag_counts, not both")
    if tag_counts is not None:
        return check_counts(np.asarray(tag_counts).reshape(-1), "tag_counts")
    return None if tags is None else count_tags(tags)


def _per_sample_gradient_norms(gradients: Any, n: int) -> np.ndarray:
    """Per-sample gradient norms, shape (n,).

    ``gradients`` is an (n,) array of norms, an (n, P) array of per-sample gradients (norm over
    the last axis), or a dict name -> such arrays (norms averaged across parameters, as upstream).
    """
    items = list(gradients.values()) if isinstance(gradients, dict) else [gradients]
    norms = []
    for k, g in enumerate(items):
        if g is None:
            continue
        a = as_float_array(g, "gradients", ndim=(1, 2), dtype=np.float64)
        if a.shape[0] != n:
            raise ValueError(f"gradients must have {n} rows (one per q value), got shape {a.shape}")
        norms.append(np.abs(a) if a.ndim == 1 else np.linalg.norm(a, axis=1))
    if not norms:
        return np.empty(0)
    return np.mean(norms, axis=0)


class DiagnosticMonitor:
    """Collects q statistics, coverage, λ, losses, tag counts and near/far gradient norms.

    Parameters
    ----------
    config : DiagnosticConfig, optional

    Attributes
    ----------
    history, tag_history, gradient_history, batch_metrics : dict of lists (see module docstring)
    pq_snapshots : list of dict {"epoch", "p_values", "q_values"}
    """

    def __init__(self, config: DiagnosticConfig | None = None) -> None:
        config = check_config(config, DiagnosticConfig)
        self.config = config
        self.reset()

    @property
    def export_dir(self) -> Path:
        """Directory of :meth:`export_diagnostics` (not created until an export)."""
        return Path(self.config.export_path)

    def reset(self) -> None:
        """Forget every history and snapshot."""
        self.history: dict[str, list] = {k: [] for k in MAIN_KEYS}
        self.tag_history: dict[str, list] = {k: [] for k in TAG_KEYS}
        self.gradient_history: dict[str, list] = {k: [] for k in GRADIENT_KEYS}
        self.batch_metrics: dict[str, list] = {k: [] for k in BATCH_KEYS}
        self.pq_snapshots: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ updates
    def update(
        self,
        epoch: int,
        metrics: dict[str, Any] | None = None,
        p_values: Any = None,
        q_values: Any = None,
        gradients: Any = None,
        tags: Any = None,
        tag_counts: Any = None,
    ) -> None:
        """Record one epoch.

        Parameters
        ----------
        epoch : int >= 0
        metrics : dict, optional
            Scalars under any of ``lambda_rej, coverage_train, coverage_eval, coverage_eval_tau,
            loss_train, loss_eval, sample_diversity`` (missing ones carry the last value forward),
            and optionally ``q_min, q_mean, q_std, near_pole_ratio`` when no ``q_values`` are given.
        p_values, q_values : (N,) arrays, optional
            P(x) and Q(x) on the epoch's samples. q statistics use |Q| over its finite entries.
        gradients : (N,) norms, (N, P) per-sample gradients, or dict of those; optional
            Needs ``q_values``: samples with |Q| < near_pole_threshold are "near", with
            |Q| > far_pole_threshold "far".
        tags : uint8 array / list of TRTag, optional
            Output tags of the epoch (counted).
        tag_counts : (4,) counts REAL, PINF, NINF, PHI, optional
            Instead of ``tags``, when they were already counted (e.g. by the fused kernel).
        """
        epoch = check_int(epoch, "epoch", minimum=0)
        metrics = {} if metrics is None else dict(metrics)
        cfg = self.config
        h = self.history
        h["epoch"].append(epoch)
        for key in CARRY_KEYS:
            if key in metrics and metrics[key] is not None:
                h[key].append(_to_json_scalar(metrics[key]))
            else:
                h[key].append(h[key][-1] if h[key] else None)

        q_abs = None
        if q_values is not None:
            q = as_float_array(q_values, "q_values", dtype=np.float64).reshape(-1)
            q_abs = np.abs(q)
            qstats = self._q_statistics(q_abs)
        else:
            qstats = {k: _float_or_none(metrics.get(k)) for k in Q_KEYS}
        below_before = self.q_min_below_threshold_epochs()
        for k in Q_KEYS:
            h[k].append(qstats[k])
        if cfg.monitor_q_min and below_before == 0 and self.q_min_below_threshold_epochs():
            # once per run: later epochs are counted (get_summary), not logged again
            logger.warning(
                "epoch %d: q_min = %.2e below threshold %.2e (logged once; "
                "get_summary()['q_min_below_threshold_epochs'] counts the epochs)",
                epoch, qstats["q_min"], cfg.q_min_warning_threshold)

        counts = _tag_counts(tags, tag_counts)
        self._append_tags(epoch, counts if cfg.track_tag_distribution else None)
        self._append_gradients(gradients if cfg.track_gradients else None, q_abs)

        if p_values is not None and q_values is not None and epoch % cfg.export_frequency == 0:
            p = np.array(as_float_array(p_values, "p_values", dtype=np.float64).reshape(-1))
            self.pq_snapshots.append({"epoch": epoch, "p_values": p, "q_values": np.array(q)})
            del self.pq_snapshots[: max(0, len(self.pq_snapshots) - N_SNAPSHOTS_EXPORTED)]

        self._trim_history()
        if cfg.auto_export and epoch % cfg.export_frequency == 0:
            self.export_diagnostics(epoch)

    def _q_statistics(self, q_abs: np.ndarray) -> dict[str, float | None]:
        finite = q_abs[np.isfinite(q_abs)]
        if finite.size == 0:
            return {k: None for k in Q_KEYS}
        return {
            "q_min": float(finite.min()),
            "q_mean": float(finite.mean()),
            "q_std": float(finite.std(ddof=1)) if finite.size > 1 else None,
            "near_pole_ratio": float(np.count_nonzero(finite < self.config.near_pole_threshold)) / finite.size,
        }

    def _append_tags(self, epoch: int, counts: np.ndarray | None) -> None:
        th = self.tag_history
        if counts is None:
            for k in TAG_KEYS:
                th[k].append(None)
            return
        n_real, n_pinf, n_ninf, n_phi = (int(c) for c in counts)
        n = n_real + n_pinf + n_ninf + n_phi
        for k, v in zip(TAG_KEYS, (n_real, n_pinf, n_ninf, n_phi, n_real / max(1, n))):
            th[k].append(v)
        n_non_real = n - n_real
        if n_non_real:
            logger.info(
                "epoch %d: non-REAL outputs PINF=%d NINF=%d PHI=%d (%.1f%% of %d)",
                epoch, n_pinf, n_ninf, n_phi, 100.0 * n_non_real / n, n,
            )

    def _append_gradients(self, gradients: Any, q_abs: np.ndarray | None) -> None:
        gh = self.gradient_history
        values: dict[str, float | None] = {k: None for k in GRADIENT_KEYS}
        if gradients is not None and q_abs is not None:
            norms = _per_sample_gradient_norms(gradients, q_abs.shape[0])
            if norms.size:
                cfg = self.config
                for side, mask in (
                    ("near_pole", q_abs < cfg.near_pole_threshold),
                    ("far_pole", q_abs > cfg.far_pole_threshold),
                ):
                    sel = norms[mask]
                    values[f"{side}_mean"] = float(sel.mean()) if sel.size else 0.0
                    values[f"{side}_max"] = float(sel.max()) if sel.size else 0.0
                near, far = values["near_pole_mean"], values["far_pole_mean"]
                values["gradient_ratio"] = near / far if (near > 0 and far > 0) else 1.0
        for k in GRADIENT_KEYS:
            gh[k].append(values[k])

    def update_batch(self, batch_idx: int, q_min: float | None = None, tags: Any = None,
                     loss: float | None = None, tag_counts: Any = None) -> None:
        """Record one batch: its index, q_min, loss and REAL / non-REAL counts (None if absent);
        ``tag_counts`` (REAL, PINF, NINF, PHI) may replace ``tags``."""
        bm = self.batch_metrics
        bm["batch_idx"].append(check_int(batch_idx, "batch_idx", minimum=0))
        bm["q_min"].append(_float_or_none(q_min))
        bm["loss"].append(_float_or_none(loss))
        c = _tag_counts(tags, tag_counts)
        if c is None:
            bm["n_real"].append(None)
            bm["n_non_real"].append(None)
        else:
            bm["n_real"].append(int(c[0]))
            bm["n_non_real"].append(int(c[1:].sum()))
        self._trim(bm)

    def _trim(self, group: dict[str, list]) -> None:
        m = self.config.max_history_length
        for k, v in group.items():
            if len(v) > m:
                del v[: len(v) - m]

    def _trim_history(self) -> None:
        for group in (self.history, self.tag_history, self.gradient_history):
            self._trim(group)

    # ------------------------------------------------------------------ export
    def to_dict(self) -> dict[str, Any]:
        """JSON-able copy of the histories: {"main", "tags", "gradients", "batch_metrics"}."""
        return {
            "main": {k: list(v) for k, v in self.history.items()},
            "tags": {k: list(v) for k, v in self.tag_history.items()},
            "gradients": {k: list(v) for k, v in self.gradient_history.items()},
            "batch_metrics": {k: list(v) for k, v in self.batch_metrics.items()},
        }

    @property
    def state(self) -> dict[str, Any]:
        """The histories and the config, JSON-able (see :meth:`to_dict`)."""
        d = self.to_dict()
        d["config"] = asdict(self.config)
        return d

    def export_diagnostics(self, epoch: int, path: str | Path | None = None) -> dict[str, Path]:
        """Write the diagnostics of ``epoch`` into ``path`` (default ``config.export_path``).

        Files: ``history_epoch_{epoch}.json`` = {"main", "tags", "gradients"};
        ``batch_metrics_epoch_{epoch}.json`` (if any batch was recorded);
        ``pq_snapshots_epoch_{epoch}.npz`` (if any snapshot exists) with arrays ``epochs`` and
        ``p_values_{e}``, ``q_values_{e}`` for the last 5 snapshot epochs ``e``.
        The directory is created here if needed.

        Returns
        -------
        dict kind -> path of each file written ("history", "batch_metrics", "pq_snapshots").
        """
        epoch = check_int(epoch, "epoch", minimum=0)
        out_dir = self.export_dir if path is None else Path(path)
        out_dir.mkdir(parents=True, exist_ok=True)
        d = self.to_dict()
        written: dict[str, Path] = {}
        p = out_dir / f"history_epoch_{epoch}.json"
        with open(p, "w", encoding="utf-8") as f:  # strict JSON: a non-finite value is null
            dump_strict({"main": d["main"], "tags": d["tags"], "gradients": d["gradients"]}, f,
                        indent=2)
        written["history"] = p
        if self.batch_metrics["batch_idx"]:
            p = out_dir / f"batch_metrics_epoch_{epoch}.json"
            with open(p, "w", encoding="utf-8") as f:
                dump_strict(d["batch_metrics"], f, indent=2)
            written["batch_metrics"] = p
        if self.pq_snapshots:
            snaps = self.pq_snapshots[-N_SNAPSHOTS_EXPORTED:]
            arrays: dict[str, np.ndarray] = {"epochs": np.array([s["epoch"] for s in snaps], dtype=np.int64)}
            for s in snaps:
                arrays[f"p_values_{s['epoch']}"] = s["p_values"]
                arrays[f"q_values_{s['epoch']}"] = s["q_values"]
            p = out_dir / f"pq_snapshots_epoch_{epoch}.npz"
            np.savez(p, **arrays)
            written["pq_snapshots"] = p
        logger.info("diagnostics for epoch %d exported to %s", epoch, out_dir)
        return written

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Config, every history and the P/Q snapshots (copies): what a checkpoint needs so
        that a resumed run's diagnostics equal an uninterrupted run's."""
        d = self.to_dict()
        d["config"] = asdict(self.config)
        d["pq_snapshots"] = [{"epoch": int(sn["epoch"]), "p_values": np.array(sn["p_values"]),
                              "q_values": np.array(sn["q_values"])} for sn in self.pq_snapshots]
        return d

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output. Everything is validated first (the config,
        the exact keys of every group, lists of equal length holding numbers or None, the
        snapshots' arrays); on an error the monitor is unchanged."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict, got {type(state).__name__}")
        for key in ("config", "main", "tags", "gradients", "batch_metrics", "pq_snapshots"):
            if key not in state:
                raise ValueError(f"state is missing {key!r}")
        cfg = state["config"]
        if not isinstance(cfg, dict):
            raise TypeError("config must be a dict")
        unknown = sorted(set(cfg) - {f.name for f in fields(DiagnosticConfig)})
        if unknown:
            raise ValueError(f"config has unknown fields {unknown}")
        config = DiagnosticConfig(**cfg)
        groups = {}
        for key, names in (("main", MAIN_KEYS), ("tags", TAG_KEYS), ("gradients", GRADIENT_KEYS),
                           ("batch_metrics", BATCH_KEYS)):
            groups[key] = _checked_group(state[key], names, key)
        snaps = state["pq_snapshots"]
        if not isinstance(snaps, list) or len(snaps) > N_SNAPSHOTS_EXPORTED:
            raise ValueError(f"pq_snapshots must be a list of at most {N_SNAPSHOTS_EXPORTED} snapshots")
        restored = []
        for i, sn in enumerate(snaps):
            if not isinstance(sn, dict) or set(sn) != {"epoch", "p_values", "q_values"}:
                raise ValueError(f"pq_snapshots[{i}] must be {{epoch, p_values, q_values}}")
            ep = sn["epoch"]
            ep = check_int(ep.item() if isinstance(ep, np.ndarray) and ep.ndim == 0 else ep,
                           f"pq_snapshots[{i}].epoch", minimum=0)
            p = as_float_array(sn["p_values"], f"pq_snapshots[{i}].p_values", ndim=1,
                               dtype=np.float64)
            q = as_float_array(sn["q_values"], f"pq_snapshots[{i}].q_values", ndim=1,
                               dtype=np.float64)
            restored.append({"epoch": ep, "p_values": np.array(p), "q_values": np.array(q)})
        self.config = config
        self.history, self.tag_history = groups["main"], groups["tags"]
        self.gradient_history, self.batch_metrics = groups["gradients"], groups["batch_metrics"]
        self.pq_snapshots = restored

    def q_min_below_threshold_epochs(self) -> int:
        """Number of recorded epochs whose q_min fell below ``q_min_warning_threshold``."""
        t = self.config.q_min_warning_threshold
        return sum(1 for v in self.history["q_min"] if v is not None and v < t)

    def get_summary(self) -> dict[str, Any]:
        """Upstream's keys, each present only when its data exists: q_min_global, q_min_recent,
        q_mean_recent (+ ours: q_min_below_threshold_epochs), coverage_current, coverage_mean (last 10), real_ratio_current,
        non_real_total, gradient_ratio_mean (last 10), gradient_ratio_max."""
        summary: dict[str, Any] = {}
        h = self.history
        q_min = [v for v in h["q_min"] if v is not None]
        if q_min:
            summary["q_min_global"] = min(q_min)
            summary["q_min_recent"] = q_min[-1]
            q_mean = [v for v in h["q_mean"] if v is not None]
            summary["q_mean_recent"] = q_mean[-1] if q_mean else 0.0
            summary["q_min_below_threshold_epochs"] = self.q_min_below_threshold_epochs()
        cov = [v for v in h["coverage_train"] if v is not None]
        if cov:
            summary["coverage_current"] = cov[-1]
            summary["coverage_mean"] = float(np.mean(cov[-10:]))
        th = self.tag_history
        ratios = [v for v in th["real_ratio"] if v is not None]
        if ratios:
            summary["real_ratio_current"] = ratios[-1]
            summary["non_real_total"] = int(
                sum(v for k in ("n_pinf", "n_ninf", "n_phi") for v in th[k] if v is not None)
            )
        gr = [v for v in self.gradient_history["gradient_ratio"] if v is not None]
        if gr:
            summary["gradient_ratio_mean"] = float(np.mean(gr[-10:]))
            summary["gradient_ratio_max"] = max(gr)
        return summary
