"""Argument checks shared by every public function of :mod:`vae_lesson`.

One wording everywhere: ``"<argument>: expected <what>, got <what>"``, raised as ``TypeError`` for a wrong
kind of object and ``ValueError`` for a wrong value (shape, range, NaN). Private: learners never call these,
but every public function starts with them, so a mistake is reported where it was made.

The float64 rule (one rule for the whole package): data may come as float64 (``torch.tensor(numpy_array)``,
scikit-learn). Wherever data meet a model's weights they are **cast once to the model's dtype** (float32 for
the course's models) by :func:`model_input`; float32 data are passed through untouched (the same tensor, the
same bits). Pure formulas (``gaussian_kl``, the log-likelihoods, ...) compute in the dtype of their inputs.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import numbers

import torch

_SCANS = contextvars.ContextVar("vae_lesson_value_scans", default=True)


@contextlib.contextmanager
def data_checked_upstream():
    """Within this block, :func:`tensor` checks kind, dtype and shape but does not scan values (finite, range).

    A value scan reads the whole tensor and brings two numbers to the host (a host sync). :func:`vae_lesson.fit`
    checks its data once up front and then runs each step's objective inside this block: the step's public
    functions still check every shape, while a NaN or inf that the model produces reaches the loss and the
    gradients, which ``fit`` checks once per step before the update. Everywhere else every check runs."""
    token = _SCANS.set(False)
    try:
        yield
    finally:
        _SCANS.reset(token)


def scanning() -> bool:
    """Whether value scans run here (``False`` only inside :func:`data_checked_upstream`)."""
    return _SCANS.get()


class NonFiniteError(ValueError):
    """A tensor holds NaN or inf (a ``ValueError``). :func:`vae_lesson.fit` turns one raised inside the model
    during training into its ``FloatingPointError``: the data were checked, so the model itself diverged."""


def fail(name: str, expected: str, got: object, error: type[Exception] = ValueError) -> None:
    """Raise ``error`` with the one wording the package uses."""
    raise error(f"{name}: expected {expected}, got {got}")


def _describe(t: torch.Tensor) -> str:
    return f"a {t.dtype} tensor of shape {list(t.shape)}"


def tensor(
    name: str,
    value: object,
    *,
    ndim: int | tuple[int, ...] | None = None,
    finite: bool = True,
    low: float | None = None,
    high: float | None = None,
) -> torch.Tensor:
    """Check that ``value`` is a floating-point tensor of the given rank, finite, within ``[low, high]``."""
    if not isinstance(value, torch.Tensor):
        fail(name, "a torch.Tensor", type(value).__name__, TypeError)
    if not value.is_floating_point():
        fail(name, "a floating-point tensor (use .float())", _describe(value), TypeError)
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else ndim
        if value.dim() not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            fail(name, f"a {want} tensor", _describe(value))
    if not value.numel() or not (finite or low is not None or high is not None) or not _SCANS.get():
        return value
    # one pass for all three value checks: min and max (NaN propagates to both); the precise scans below run
    # only to word an error. Three separate scans cost ~35x more (21 ms on the 4000 MNIST training images).
    lo, hi = (float(v) for v in torch.aminmax(value.detach()))
    if math.isnan(lo) or math.isnan(hi) or math.isinf(lo) or math.isinf(hi):
        if finite:
            fail(name, "finite values (no NaN or inf)",
                 f"{int((~torch.isfinite(value)).sum())} non-finite entries", NonFiniteError)
        ignore_nan = value.detach().isnan()  # finite=False: NaN is allowed, so the range ignores it
        lo = float(value.detach().masked_fill(ignore_nan, math.inf).min())
        hi = float(value.detach().masked_fill(ignore_nan, -math.inf).max())
    if low is not None and lo < low:
        fail(name, f"values >= {low}", f"a minimum of {lo:.4g}")
    if high is not None and hi > high:
        fail(name, f"values <= {high}", f"a maximum of {hi:.4g}")
    return value


def same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    """Check that two tensors have the same shape."""
    if a.shape != b.shape:
        fail(name_b, f"the shape of {name_a}, {list(a.shape)}", list(b.shape))


def integer(name: str, value: object, *, minimum: int | None = None) -> int:
    """Check that ``value`` is an int (not a bool or a float) at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(name, "an int", repr(value), TypeError)
    if minimum is not None and value < minimum:
        fail(name, f"an int >= {minimum}", value)
    return int(value)


def number(name: str, value: object, *, minimum: float | None = None, positive: bool = False) -> float:
    """Check that ``value`` is a finite real number, ``>= minimum`` (or ``> 0`` when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(name, "a real number", repr(value), TypeError)
    value = float(value)
    if not math.isfinite(value):
        fail(name, "a finite number", value)
    if positive and value <= 0:
        fail(name, "a number > 0", value)
    if minimum is not None and value < minimum:
        fail(name, f"a number >= {minimum}", value)
    return value


def dims(name: str, value: object) -> tuple[int, ...]:
    """Check a sequence of layer widths, e.g. ``hidden_dims=(400,)``; each must be an int >= 1."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        fail(name, "a sequence of ints such as (400,)", repr(value), TypeError)
    widths = tuple(value)
    for i, w in enumerate(widths):
        integer(f"{name}[{i}]", w, minimum=1)
    return widths


def choice(name: str, value: object, options: tuple[str, ...]) -> str:
    """Check that ``value`` is one of ``options``."""
    if value not in options:
        fail(name, "one of " + ", ".join(repr(o) for o in options), repr(value))
    return value  # type: ignore[return-value]


def generator(name: str, value: object) -> torch.Generator | None:
    """Check an optional ``torch.Generator``."""
    if value is not None and not isinstance(value, torch.Generator):
        fail(name, "a torch.Generator or None", type(value).__name__, TypeError)
    return value


def model_dtype(model: object) -> torch.dtype | None:
    """The dtype of ``model``'s first floating-point parameter (``None`` if it has none)."""
    params = getattr(model, "parameters", None)
    if params is None:
        return None
    for p in params():
        if p.is_floating_point():
            return p.dtype
    return None


def model_input(name: str, value: torch.Tensor, model: object) -> torch.Tensor:
    """The float64 rule: ``value`` (already checked to be a floating-point tensor) cast once to ``model``'s dtype.

    A tensor that already has that dtype is returned as it is (no copy, the same bits)."""
    dtype = model_dtype(model)
    if dtype is None or value.dtype == dtype:
        return value
    return value.to(dtype)


def device(name: str, value: object) -> torch.device:
    """Check a device argument (``"cpu"``, ``"cuda"``, ``torch.device``) and that this torch can use it."""
    if isinstance(value, torch.device):
        dev = value
    elif isinstance(value, str):
        try:
            dev = torch.device(value)
        except (RuntimeError, ValueError):
            fail(name, "a device such as 'cpu' or 'cuda'", repr(value))
    else:
        fail(name, "a device such as 'cpu' or 'cuda' (a str or torch.device)", type(value).__name__, TypeError)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            fail(name, "a device this torch can use: CUDA is not available here (torch.cuda.is_available() is "
                 f"False; torch {torch.__version__} is a CPU-only build or no GPU is visible), use 'cpu'",
                 repr(str(dev)))
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            fail(name, f"a CUDA device index below {torch.cuda.device_count()}", repr(str(dev)))
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            fail(name, "a device this torch can use: MPS is not available here, use 'cpu'", repr(str(dev)))
    elif dev.type != "cpu":
        fail(name, "'cpu' or 'cuda'", repr(str(dev)))
    return dev
