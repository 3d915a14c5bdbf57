"""Evaluation: metrics (NaN-aware, per task), the fingerprint random-forest baseline, figures, and the writers of
prediction tables (``predictions``)."""
