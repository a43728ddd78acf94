"""A research team's diag-harness plug-ins: a recipe and a diagnostic.

:mod:`forward_returns.recipe` regresses forward log returns; :mod:`forward_returns.stability`
checks whether the best trials agree on which features matter.
"""
