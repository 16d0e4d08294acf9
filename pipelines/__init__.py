"""DVC stages: one module per stage (ingest, validate, split, profile, ...), each with a small ``main()``.

Importing the package pins the numerical code paths first (``pipelines.numerics``): every stage runs as
``python -m pipelines.<stage>``, so the pins hold before numpy, scikit-learn or torch load.
"""

from pipelines.numerics import pin

pin()
