"""Training: find labelled photos, split them reproducibly, train the classifier (``python -m training``)."""
