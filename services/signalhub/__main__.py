"""``python -m signalhub``: the same CLI as the ``signalhub`` console script."""

from signalhub.cli import main

main()
