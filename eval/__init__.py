"""Evaluation of the detector on NAB-style labelled data (``python -m eval --help``)."""
