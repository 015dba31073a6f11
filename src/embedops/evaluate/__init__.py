"""Evaluation: intrinsic word tests, retrieval metrics, golden query sets."""
