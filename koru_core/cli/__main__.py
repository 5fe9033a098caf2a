"""``python -m koru_core.cli``: the ``koru`` command line."""

from koru_core.cli import main

main(prog_name="koru")
