"""Label review: the SQLite label store (``store``), GLM-4V auto-labeling (``glm``), suspects first (``suspects``),
a reviewer's work on them (``review``), the Review tab (``tab``) and ``python -m labeling``."""
