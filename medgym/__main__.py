"""``python -m medgym`` runs the command line."""

from medgym.cli import main

main()
