"""Evaluation: reconstruction metrics (``metrics``), Frechet distances FID/FVD (``frechet``),
their feature networks (``features``), rate-distortion (``rd``) and codec anchors (``anchors``).

Import the submodule you need; this package imports nothing heavy on its own.
"""
