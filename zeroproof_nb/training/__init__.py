"""The thin policy layer: adaptive λ_rej, coverage, tag loss, samplers, diagnostics, trainers.

Import from the submodules, at the paths the user's documents name, e.g.
``from zeroproof_nb.training.adaptive_loss import AdaptiveLambda, AdaptiveLossConfig``.
"""
