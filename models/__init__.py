"""Model code: scikit-learn baselines and candidates, the Lightning tabular model, and the predictors that the
evaluation and the service load from a trained artifact. Trained artifacts live under ``artifacts/`` (DVC outputs)."""
