"""The exceptions nnc raises for failures the library reports (argument mismatches are plain
TypeError / ValueError, raised before the library is called)."""
from . import _abi


class Error(RuntimeError):
    """A failure reported by nnc: a bad model, bad weights, or a failed call.

    `status` is the C status code (1 user error, 2 usage error, 3 out of memory)."""

    def __init__(self, message, status=_abi.NNC_ERR_USER):
        super().__init__(message)
        self.status = status

    def __reduce__(self):
        # pickled with its status: an error raised on a Dask worker keeps it on the client
        return (type(self), (str(self), self.status))


class CompileError(Error):
    """The .nn model does not compile; the message is `file:line:col: error: ...`."""


class WeightsError(Error):
    """The weights file does not fit the model (missing tensor, wrong shape or dtype)."""


class ClosedError(Error, ValueError):
    """A model used after close() (or after its `with` block): its context and weights are
    gone.  Also a ValueError, as the package raised before."""

    def __init__(self, message, status=_abi.NNC_ERR_USAGE):
        super().__init__(message, status)
