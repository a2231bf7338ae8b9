"""`python -m opslab …`: the same CLI as the `opslab` command."""

from opslab.cli import main

main()
