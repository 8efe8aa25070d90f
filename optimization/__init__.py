"""Research at cluster scale: parameter search, grid sweeps, walk-forward, Monte Carlo, stress.

Ray and optuna live in this package only (``core`` and ``strategies`` never import them);
submodules import them where needed, so ``import optimization`` itself stays cheap.
"""

__all__: list[str] = []
