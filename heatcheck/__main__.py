"""The ``heatcheck`` command (also ``python -m heatcheck``).

- ``heatcheck audit [PYTEST ARGS]``: run the shipped audit suite (``pytest --pyargs
  heatcheck.suite``) from any folder, e.g. ``heatcheck audit --hc-model model.keras
  --hc-images data/manifest.csv``.
- ``heatcheck init [DIR]``: write a ``[tool.heatcheck]`` starter and CI job examples.
- ``heatcheck merge DIR... -o OUT``: put shards' partial results together.
- ``heatcheck report [DIR]``: rebuild index.html from results.json and maps.npz.
- ``heatcheck tolerances RUN...``: the baseline gate's tolerance table, measured on runs of
  equally good models (heatcheck.checks.tolerances).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="heatcheck", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("audit", help="run the audit suite; every other argument goes to pytest",
                   add_help=False)
    init = sub.add_parser("init", help="write a [tool.heatcheck] starter and CI job examples")
    init.add_argument("folder", nargs="?", default=".", type=Path)
    sub.add_parser("merge", help="put shards' partial results together", add_help=False)
    sub.add_parser("report", help="rebuild index.html from results.json", add_help=False)
    sub.add_parser("tolerances", help="measure baseline tolerances on runs of equally good models",
                   add_help=False)
    if not args or args[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "audit":
        # A subprocess, so that this command imports neither pytest nor TensorFlow itself.
        return subprocess.call([sys.executable, "-m", "pytest", "--pyargs", "heatcheck.suite", *rest])
    if command == "merge":
        from heatcheck.report.merge import main as merge_main

        return merge_main(rest)
    if command == "tolerances":
        from heatcheck.checks.tolerances import main as tolerances_main

        return tolerances_main(rest)
    if command == "report":
        from heatcheck.report import main as report_main

        return report_main(rest)
    parsed = parser.parse_args(args)
    from heatcheck.starter import write_starter

    for line in write_starter(parsed.folder):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
