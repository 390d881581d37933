"""The `lab` console script: hand `lab check` to a warm server when one runs, else run here.

Kept free of heavy imports: on the warm path this module and `labcoat.warm` are all
that a `lab check` process imports.
"""

from __future__ import annotations

import sys


def main() -> None:
    from labcoat import warm

    code = warm.run_via_server(sys.argv[1:])
    if code is not None:
        sys.exit(code)
    from labcoat.cli import main as cli_main

    cli_main()
