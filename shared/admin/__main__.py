"""``python -m shared.admin``: the admin CLI over the app's HTTP API (``make admin ARGS="status"``; docs/cli.md).

Exit codes: 0 done; 1 the app refused (its error code and message go to standard error) or a watched job did not
finish; 2 a command line the CLI cannot act on; 3 the app cannot be reached (the message names the URL).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

import httpx

from shared.admin.client import AdminClient, Refusal, Unreachable, UsageError
from shared.admin.commands import Context
from shared.admin.parser import build_parser
from shared.admin.progress import Watcher

OK, REFUSED, USAGE, UNREACHABLE = 0, 1, 2, 3


def main(
    argv: Sequence[str] | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
    env: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    tty: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Run one command; the exit code. Tests pass ``transport`` (the local host), ``env``, the streams, ``tty``,
    ``sleep``, ``clock`` and ``now`` as seams."""
    stdout, stderr = out or sys.stdout, err or sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, argparse printed why)
        return int(exc.code or 0)
    client: AdminClient | None = None
    try:
        client = AdminClient.from_environment(args.url, os.environ if env is None else env, transport)
        watcher = Watcher(
            client,
            stdout,
            stdout.isatty() if tty is None else tty,
            sleep,
            clock,
            interval=max(0.1, args.interval),
            timeout=args.timeout,
        )
        code: int = args.handler(args, Context(client, stdout, watcher, now))
        return code
    except UsageError as exc:
        print(f"{parser.prog}: error: {exc}", file=stderr)
        return USAGE
    except Refusal as exc:
        where = f" (field {exc.field})" if exc.field else ""
        print(f"error {exc.status} {exc.code}: {exc.message}{where}", file=stderr)
        return REFUSED
    except Unreachable as exc:
        print(f"error: {exc}; is the app running there? (`make run` starts it locally; --url or SYNC_URL point elsewhere)",
              file=stderr)  # fmt: skip
        return UNREACHABLE
    except TimeoutError as exc:
        print(f"error: {exc}", file=stderr)
        return REFUSED
    except KeyboardInterrupt:
        print(file=stderr)
        return 130
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
