"""The adaptive λ_rej update rule (one batch), shared by :class:`~zeroproof_nb.training.
adaptive_loss.AdaptiveLambda` and the compiled training loop (:mod:`.train`).

Scalars in, scalars out. Codes of the rule's outcome: :data:`RULE_SKIPPED` (warm-up or between
updates: nothing recorded), :data:`RULE_DEAD_BAND` (|gap| < dead band: λ kept, a 0.0 update
recorded), :data:`RULE_APPLIED`, :data:`RULE_OVERFLOW` (the update would leave λ or the
velocity non-finite, or started from a non-finite one: nothing changed, and both callers raise
the same ``ValueError``).
"""
from __future__ import annotations

import math

from numba import njit

RULE_SKIPPED, RULE_DEAD_BAND, RULE_APPLIED, RULE_OVERFLOW = 0, 1, 2, 3


@njit(cache=True)
def decayed_rate(learning_rate, exponential_decay, steps_after_warmup):
    """``learning_rate · exponential_decay**steps_after_warmup`` (no decay when
    ``exponential_decay`` <= 0, i.e. None)."""
    if exponential_decay > 0.0:
        return learning_rate * math.pow(exponential_decay, float(steps_after_warmup))
    return learning_rate


@njit(cache=True)
def lambda_rule(step_count, batch_coverage, cumulative_coverage, lam, velocity,
                target_coverage, learning_rate, exponential_decay, warmup_steps,
                update_frequency, dead_band, momentum, lambda_min, lambda_rej_min, lambda_max):
    """One λ_rej update after the batch numbered ``step_count`` (1-based).

    Parameters
    ----------
    step_count : int, this batch's number (already incremented)
    batch_coverage, cumulative_coverage : float, REAL share of the batch / of all batches
    lam, velocity : float, the current λ_rej and momentum state
    target_coverage ... lambda_max : the :class:`AdaptiveLossConfig` fields as floats and
        ints; ``exponential_decay`` <= 0 for None, ``lambda_max`` = inf for None

    Returns
    -------
    (lam, velocity, code, applied) : the new λ and velocity, the outcome code and the applied
    change (0.0 unless ``code == RULE_APPLIED``).

    The rule: after warm-up, every ``update_frequency`` steps, gap = target − coverage (the
    cumulative coverage for the first two steps, then the batch's); no change inside the dead
    band; else step = rate·gap with the decayed rate; with momentum, a velocity pointing
    against the step is reset to 0, then v ← μ·v + step is the change; the change is doubled
    when coverage is above target and halved below; λ is clipped to
    [max(lambda_min, lambda_rej_min), lambda_max].

    Guard: when λ or the velocity is not finite on entry, or the step, the change, the new
    velocity or the new λ is not (an absurd learning rate overflows them; ``inf - inf`` would
    give NaN, which ``max`` would silently replace by the floor), the result is
    ``(lam, velocity, RULE_OVERFLOW, 0.0)`` with the inputs unchanged.
    """
    if not (abs(lam) < math.inf and abs(velocity) < math.inf):
        return lam, velocity, RULE_OVERFLOW, 0.0
    if step_count <= warmup_steps or (step_count - warmup_steps) % update_frequency != 0:
        return lam, velocity, RULE_SKIPPED, 0.0
    coverage = cumulative_coverage if step_count <= 2 else batch_coverage
    gap = target_coverage - coverage
    if abs(gap) < dead_band:
        return lam, velocity, RULE_DEAD_BAND, 0.0
    step = decayed_rate(learning_rate, exponential_decay, step_count - warmup_steps) * gap
    velocity0 = velocity
    if momentum > 0.0:
        # opposite signs, compared with the sign of the gap: the product of two tiny steps
        # underflows to -0, and a step rate*gap can underflow to -0 or +0 itself
        if (velocity < 0.0 < gap) or (gap < 0.0 < velocity):
            velocity = 0.0
        velocity = momentum * velocity + step
        change = velocity
    else:
        change = step
    change *= 2.0 if gap < 0.0 else 0.5
    moved = lam + change
    if not (abs(change) < math.inf and abs(velocity) < math.inf and abs(moved) < math.inf):
        return lam, velocity0, RULE_OVERFLOW, 0.0
    new = max(lambda_min, moved)
    new = max(lambda_rej_min, new)
    new = min(lambda_max, new)
    return new, velocity, RULE_APPLIED, change
