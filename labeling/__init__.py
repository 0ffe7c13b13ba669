"""Label review: the SQLite label store, GLM-4V auto-labeling, suspects first, the Review tab.

Not built yet (its own issue); the package exists so the layout is settled.
"""
