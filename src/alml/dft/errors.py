"""Failures of DFT runs. Every one is a failure, never a label."""


class DFTError(RuntimeError):
    """A pw.x run failed: crash, timeout, bad input, non-convergence or unparsable output."""


class DFTInputError(DFTError, ValueError):
    """The structure or settings cannot be computed as given."""


class DFTCrashError(DFTError):
    """pw.x exited with an error."""


class DFTTimeoutError(DFTError):
    """pw.x ran past the profile's time limit."""


class DFTNotConvergedError(DFTError):
    """The SCF did not converge."""


class DFTStoppedError(DFTError):
    """pw.x stopped on request (its exit file) with restart files: running the same job again resumes it."""


class DFTParseError(DFTError):
    """pw.x output lacks something that a finished run must contain."""
