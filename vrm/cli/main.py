"""``vrm``: parse arguments, call the node (admin API) or the home, render the result.

Every command takes ``--home`` (default ``$VRM_HOME``) and ``--json``. Errors print
``error [code] message`` and exit with the error family's status (see vrm.errors).
The group is in ``app.py``; each command module registers its commands on it.
"""

from __future__ import annotations

from vrm.cli.app import cli

__all__ = ["cli", "load_commands", "main"]


def load_commands() -> None:
    """Import the modules that register commands on ``cli`` (kept out of import time)."""
    from vrm.cli import (  # noqa: F401
        commands,
        data_agreements,
        data_grants,
        data_portability,
        data_profile,
        demo_command,
        discovery,
        intents,
        intents_customer,
        intents_vendor,
        node_commands,
    )


def main() -> None:
    load_commands()
    cli(prog_name="vrm")


if __name__ == "__main__":
    main()
