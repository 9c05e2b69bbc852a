"""User-facing errors: one clear message, exit code 2, no traceback."""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator

EXIT_USER_ERROR = 2


class UserError(Exception):
    """An error the user can fix (bad value, missing file); printed without a traceback."""


def choice_error(what: str, value: object, choices: Iterable[str]) -> UserError:
    """Build the standard 'unknown X' error naming the bad value and the valid choices."""
    listed = ", ".join(sorted(str(c) for c in choices))
    return UserError(f"unknown {what} {value!r}; valid choices: {listed}")


def check_choice(what: str, value: str, choices: Iterable[str]) -> str:
    """Return `value` if it is one of `choices`, else raise the standard UserError."""
    choices = list(choices)
    if value not in choices:
        raise choice_error(what, value, choices)
    return value


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a UserError into `error: <message>` on stderr and exit code 2."""
    try:
        yield
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
