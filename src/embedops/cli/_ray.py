"""The ``--ray`` options shared by ``embedops ingest`` and ``embedops rollout start``."""

from __future__ import annotations

import typer

RAY_OPTION = typer.Option(
    False, "--ray", help="Run the embedding on a Ray cluster (the 'ray' extra of embedops): "
    "the one at --ray-address or $RAY_ADDRESS, else a local one started for this command. "
    "Results are written here, as without --ray.")
RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address", metavar="ADDRESS", help="Ray cluster to use with --ray: 'local', "
    "'auto', 'ray://head:10001' or 'head:6379' (default: $RAY_ADDRESS, else local).")
RAY_WORKERS_OPTION = typer.Option(
    None, "--ray-workers", min=1, help="Ray actors embedding at once (default: one per CPU "
    "of the cluster); each loads the model once.")
