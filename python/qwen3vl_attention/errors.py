"""Exceptions raised for the library's Status codes.

Every error is a :class:`Error` carrying the library's message and its ``code``
(:class:`qwen3vl_attention.StatusCode`). Argument errors are also ``ValueError``, so code that
catches ``ValueError`` keeps working.
"""

from . import _core
from ._core import StatusCode


class Error(Exception):
    """A non-ok Status from the library; ``code`` is its StatusCode."""

    code: StatusCode


class InvalidArgumentError(Error, ValueError):
    """A value outside its allowed range (the message names the argument)."""


class ShapeMismatchError(Error, ValueError):
    """Arrays whose shapes do not agree."""


class BadStrideError(Error, ValueError):
    """A stride the kernel cannot use (e.g. the last dimension not contiguous)."""


class NullPointerError(Error, ValueError):
    """A required array is missing."""


class WorkspaceTooSmallError(Error, ValueError):
    """The workspace given is smaller than the plan needs."""


class UnsupportedError(Error, NotImplementedError):
    """Valid input that this implementation does not handle."""


class NotBuiltError(Error, NotImplementedError):
    """A variant or feature that is not built."""


class DeviceError(Error, RuntimeError):
    """A CUDA or driver call failed."""


class OutOfMemoryError(Error, MemoryError):
    """An allocation failed."""


class InternalError(Error, RuntimeError):
    """A bug in the library."""


class IoError(Error, OSError):
    """A read or write of a store failed."""


class DataCorruptError(Error, RuntimeError):
    """Stored bytes failed their checksum or header check."""


_BY_CODE = {
    StatusCode.invalid_argument: InvalidArgumentError,
    StatusCode.shape_mismatch: ShapeMismatchError,
    StatusCode.bad_stride: BadStrideError,
    StatusCode.null_pointer: NullPointerError,
    StatusCode.unsupported: UnsupportedError,
    StatusCode.not_implemented: NotBuiltError,
    StatusCode.workspace_too_small: WorkspaceTooSmallError,
    StatusCode.device_error: DeviceError,
    StatusCode.out_of_memory: OutOfMemoryError,
    StatusCode.internal: InternalError,
    StatusCode.io_error: IoError,
    StatusCode.data_corrupt: DataCorruptError,
}

_core._register_errors(Error, _BY_CODE)


def error_class(code: StatusCode) -> type:
    """The exception class raised for a StatusCode."""
    return _BY_CODE.get(code, Error)
