"""Evaluation and monitoring: golden query sets and their run history, recall lost by each
layer, embedding drift (with an HTML report), and comparison/alignment of model versions."""
