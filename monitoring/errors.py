"""One error model. Every error the package raises on purpose derives from `Problem`: its message is one line
naming the thing and the reason, and its class says which exit status it means. `monitoring.cli.main` is the
one place that turns a problem into a status; docs/exit-codes.md is the table every command follows.

The bases also derive from the built-in they replace (ValueError, OSError, RuntimeError), so code that
catches those keeps working while it moves to these."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """The exit statuses of every `monitoring` command (gonogo adds its verdicts, 10 to 40, above them)."""

    OK = 0
    FAILED = 1  # a check failed, or an operation did not do what it should (and said why)
    BAD_INPUT = 2  # definitions, arguments, files, environment, payloads, answers: nothing was changed
    CONFLICT = 3  # someone else changed the rollout (deploy stops for good rather than fight them)
    FLAG_SYSTEM = 4  # the flag system refused or could not be reached when a write or read had to happen
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells report it


class Problem(Exception):
    """An error the package foresaw; `exit` is the status it means."""

    exit: Exit = Exit.FAILED


class Failed(Problem, RuntimeError):
    """An operation could not do its job (a server would not start, an answer was not what it must be)."""

    exit = Exit.FAILED


class BadInput(Problem, ValueError):
    """Input that cannot work: definitions, arguments, files, environment, a payload or an API answer."""

    exit = Exit.BAD_INPUT


class BadFile(Problem, OSError):
    """A file or folder that cannot be read or written (missing, unreadable, full, read-only)."""

    exit = Exit.BAD_INPUT


class Conflict(Problem, RuntimeError):
    """Someone else changed what this command was changing; it stopped rather than overwrite them."""

    exit = Exit.CONFLICT


class FlagSystemDown(Problem, RuntimeError):
    """The flag system refused or could not be reached."""

    exit = Exit.FLAG_SYSTEM


def exit_status(error: BaseException) -> Exit | None:
    """The status `error` means, or None for an error nobody foresaw (a bug: exit 1, with a traceback on
    request). A bare OSError (a path that is missing, unreadable, full) is bad input, like BadFile."""
    if isinstance(error, Problem):
        return error.exit
    if isinstance(error, KeyboardInterrupt):
        return Exit.INTERRUPTED
    if isinstance(error, OSError):  # a file or folder the standard library refused: the message names it
        return Exit.BAD_INPUT
    return None
