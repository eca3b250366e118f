"""The command line's errors: which exceptions are the user's input, not our bug."""

from __future__ import annotations

import sys

import resnet_spec as rs


class UsageError(Exception):
    """An expected error: printed as one paragraph, exit status 2."""


def expected_errors() -> tuple[type[BaseException], ...]:
    """Errors that are the user's input: one paragraph, exit 2, no traceback. Light modules
    only; porting's error is included once porting has been loaded."""
    from ..apps.export.formats import ExportError
    from ..files.atomic import OutputExistsError, OutputPathError
    from ..files.errors import CheckpointError

    errors = (UsageError, rs.SpecError, rs.UnknownArchitecture, CheckpointError, OutputExistsError, OutputPathError,
              ExportError)
    porting = sys.modules.get("parity.core.porting")
    return errors + ((porting.WeightMismatchError,) if porting else ())
