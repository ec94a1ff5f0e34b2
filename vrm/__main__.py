"""``python -m vrm`` runs the CLI."""

from vrm.cli.main import main

main()
