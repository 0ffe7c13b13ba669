"""Evaluation: batch prediction and reports (``python -m evaluation ...``)."""
