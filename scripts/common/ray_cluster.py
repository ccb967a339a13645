"""Starting or joining Ray for the commands with a Ray engine (annotate, tune).

init_ray(None, num_cpus=2)            # a local Ray
init_ray("ray://head:10001")          # a cluster
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

from scripts.common.errors import UserError, one_line


def init_ray(address: Optional[str], *, runtime_env: Optional[dict] = None, **options: Any) -> None:
    """Connect to the cluster at address, or start a local Ray; runtime_env says what the workers
    get (default: this repo's scripts package)."""
    import ray

    import scripts

    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.ERROR,
            # the workers import scripts.*
            runtime_env=runtime_env or {"py_modules": [str(Path(scripts.__file__).parent)]},
            **options,
        )
    except (ConnectionError, ValueError, RuntimeError) as err:
        hint = "check --address"
        # `ray start` turns token authentication on since Ray 2.59
        if address and not os.environ.get("RAY_AUTH_MODE"):
            hint += (
                "; a cluster with token authentication also needs RAY_AUTH_MODE=token (and its "
                "token in RAY_AUTH_TOKEN or ~/.ray/auth_token)"
            )
        where = address or "a new local instance"
        raise UserError(f"cannot start or reach Ray at {where} ({one_line(err)}); {hint}") from None
    logging.getLogger("ray.data").setLevel(logging.WARNING)
