"""``python -m opslab.docgen [--check] [DOCS_DIR]``: write the generated pages, or check them."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from opslab.docgen.pages import stale_pages, write_pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opslab.docgen", description=__doc__)
    parser.add_argument("docs_dir", nargs="?", type=Path, default=Path("docs"))
    parser.add_argument("--check", action="store_true", help="exit 1 when a committed page is stale")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages(args.docs_dir)
        for name in stale:
            sys.stderr.write(f"{args.docs_dir / name} is stale: run `make docs`\n")
        return 1 if stale else 0
    for path in write_pages(args.docs_dir):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
