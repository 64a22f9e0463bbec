"""Fail when any template does not parse with the pycep-parser in the running interpreter.

checkov reports a Bicep file it cannot parse as a "parsing error" and still exits 0, having checked nothing in
that file. ``make infra-check`` runs this script in checkov's own virtual environment (checkov pins an older
pycep-parser than the one the tests use), so a template checkov cannot read fails the build instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pycep import BicepParser


def main(root: Path) -> int:
    templates = sorted(root.rglob("*.bicep"))
    failures: list[str] = []
    for template in templates:
        try:
            BicepParser().parse(file_path=template)
        except Exception as error:
            failures.append(f"{template}: {type(error).__name__}: {str(error).splitlines()[0]}")
    for failure in failures:
        print(failure, file=sys.stderr)
    print(f"parse_all: {len(templates) - len(failures)}/{len(templates)} templates parse")
    return 1 if failures or not templates else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("infra")))
