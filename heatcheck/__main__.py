"""``python -m heatcheck COMMAND``: ``merge`` (shards into one report) and ``report`` (rebuild a page)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

COMMANDS = {"merge": "put shards' partial results together: python -m heatcheck merge DIR... -o OUT",
            "report": "rebuild index.html from results.json: python -m heatcheck report [DIR]"}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        print("usage: python -m heatcheck {" + ",".join(COMMANDS) + "} ...", file=sys.stderr)
        for name, text in COMMANDS.items():
            print(f"  {name:7} {text}", file=sys.stderr)
        return 2
    if args[0] == "merge":
        from heatcheck.merge import main as merge_main

        return merge_main(args[1:])
    from heatcheck.report import main as report_main

    return report_main(args[1:])


if __name__ == "__main__":
    sys.exit(main())
