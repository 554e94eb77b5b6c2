"""``python -m dynbench`` is the ``dynbench`` command."""

from dynbench.cli import main

main()
