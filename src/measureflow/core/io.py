"""Atomic file writes and JSON conversion (used by the experiment runner and the report)."""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["to_jsonable", "atomic_write_bytes", "atomic_write_text"]


def to_jsonable(x: Any) -> Any:
    """Convert tensors, arrays and non-finite floats to plain JSON values.

    Tensors and arrays become (nested) lists, NumPy scalars Python scalars, non-finite floats
    the strings ``"nan"``, ``"inf"``, ``"-inf"``, dict keys strings, tuples lists, dataclasses
    dicts; any other object its ``str``.

    Parameters
    ----------
    x : object

    Returns
    -------
    object
        Made of dict, list, str, int, float (finite), bool and None only.

    Examples
    --------
    >>> import json
    >>> import numpy as np
    >>> from measureflow.core.io import to_jsonable
    >>> json.dumps(to_jsonable({"a": np.array([1.0, np.inf]), 2: (np.int64(3), None)}))
    '{"a": [1.0, "inf"], "2": [3, null]}'
    """
    try:
        import torch
        if isinstance(x, torch.Tensor):
            x = x.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    import numpy as np
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return to_jsonable(x.item())
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [to_jsonable(v) for v in x]
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, fsync, rename).

    Readers see either the old file or the whole new one, never a partial write; the file gets
    the permissions of a new file under the current umask. The temporary file is removed on
    failure.

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    data : bytes

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from measureflow.core.io import atomic_write_bytes
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "out.bin"
    ...     atomic_write_bytes(p, b"abc")
    ...     print(p.read_bytes(), sorted(f.name for f in pathlib.Path(d).iterdir()))
    b'abc' ['out.bin']
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write_bytes`).

    Parameters
    ----------
    path : str or Path
    text : str

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from measureflow.core.io import atomic_write_text
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "out.txt"
    ...     atomic_write_text(p, "W2 = 0.625")
    ...     print(p.read_text(encoding="utf-8"))
    W2 = 0.625
    """
    atomic_write_bytes(path, text.encode("utf-8"))
