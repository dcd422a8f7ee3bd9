"""Domain adaptation by optimal transport: a scikit-learn style estimator.

``measureflow.da.Transport`` fits a transport plan between a source sample ``Xs`` and a target
sample ``Xt`` (exact, entropic, unbalanced, optionally class-regularised with source labels)
and maps points with it: the barycentric projection on the training points, the entropic map
of Pooladian & Niles-Weed out of sample (entropic methods), or the nearest-neighbour rule of
POT's ``ot.da`` (exact and class-regularised plans). It derives from scikit-learn's
``BaseEstimator`` and ``TransformerMixin`` when scikit-learn is installed (``pip install
measureflow[da]``) and works without it (``get_params`` / ``set_params`` / ``clone``-compatible
parameters are provided either way). Uses :mod:`measureflow.ot` and :mod:`measureflow.core`
only. See docs/coming-from-pot.md for the correspondence with POT's ``ot.da`` classes.
"""

from .transport import NotFittedError, Transport

__all__ = ["Transport", "NotFittedError"]
