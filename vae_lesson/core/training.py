r"""Training in memory: :func:`fit` and :func:`evaluate`.

``fit`` is the plain loop a course needs and nothing more: shuffle indices with a seeded generator, slice
mini-batches from a tensor already in memory (no ``DataLoader``), take an Adam step on

$$\text{loss} = -\frac1B\sum_{n=1}^B\Big[\text{reconstruction}_n - \beta_t\,\text{kl}_n\Big],$$

and record per-epoch means of the terms in **nats per example** (summed over pixels). $\beta_t$ ramps
linearly from 0 to ``beta`` over ``kl_warmup_epochs`` (KL warm-up); the recorded ``elbo`` is always the
unweighted ``reconstruction - kl``. Other objectives (IWAE, VQ-VAE, free bits, the autoencoder) return an
:class:`~vae_lesson.core.bounds.Objective`: a per-example loss and named terms, recorded under their own names
(see :class:`History`). Train-set numbers are running means over the epoch's batches (the model
changes during the epoch); validation numbers are computed after the epoch, in eval mode.

Divergence: if the loss or a gradient turns NaN or infinite, or the model produces a non-finite value while
computing the loss (e.g. ``exp(logvar)`` overflowing), training stops at once with ``FloatingPointError`` naming the
epoch, the step, the learning rate and a hint, **before** that step's update: the model keeps the (finite)
parameters it had after the last good step. float64 data are cast once to the model's dtype.

Checks and host syncs: the data are checked once up front (finite, in [0, 1], shapes); inside each step the
public functions check shapes only (``vae_lesson._checks.data_checked_upstream``), and the step reads one thing
back from the device: the loss together with a flag saying whether every gradient is finite.
"""

from __future__ import annotations

import math
import os
import sys
import time

import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import ELBOTerms, Objective, elbo, reconstruction_terms
from vae_lesson.core.models import Autoencoder

PROGRESS_ENV = "VAE_LESSON_PROGRESS"
TERMS = ("reconstruction", "kl", "elbo")


class MissingSeriesError(KeyError, AttributeError):
    """A :class:`History` asked for a series it does not record (a ``KeyError`` and an ``AttributeError``)."""

    def __str__(self) -> str:
        return str(self.args[0])


class History:
    """Per-epoch record of :func:`fit`: named series, each a list with one float per epoch.

    The series are the objective's named terms, means per example over the epoch's batches (for the ELBO:
    ``reconstruction``, ``kl``, ``elbo``, nats; for ``iwae_objective(k)``: ``iwae_bound``; for a VQ-VAE:
    ``reconstruction``, ``squared_distance``; ...), the same with a ``val_`` prefix when ``fit`` had
    ``X_val``, ``beta`` (the weight of the objective's KL term at the end of each epoch, for objectives that have
    one) and ``seconds`` (wall clock per epoch). Read them as ``history.kl`` or ``history["val_elbo"]``; a name
    the history does not record raises :class:`MissingSeriesError` naming the series it has, so no series ever
    stands in for another.
    """

    def __init__(self, **series):
        self._series: dict[str, list[float]] = {name: list(values) for name, values in series.items()}

    def _missing(self, name: str) -> MissingSeriesError:
        have = ", ".join(self._series) or "none yet"
        return MissingSeriesError(f"history: expected the name of a series it records ({have}), got {name!r}")

    def __getattr__(self, name: str) -> list[float]:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._series[name]
        except KeyError:
            raise self._missing(name) from None

    def __getitem__(self, name: str) -> list[float]:
        if name not in self._series:
            raise self._missing(name)
        return self._series[name]

    def __contains__(self, name: object) -> bool:
        return name in self._series

    def __len__(self) -> int:
        """The number of epochs recorded."""
        return max((len(v) for v in self._series.values()), default=0)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, History) and self._series == other._series

    def __repr__(self) -> str:
        return f"History({len(self)} epochs: {', '.join(self._series)})"

    def names(self) -> list[str]:
        """The names of the series this history records."""
        return list(self._series)

    def _record(self, name: str, value: float) -> None:
        self._series.setdefault(name, []).append(value)

    def as_dict(self, timings: bool = False) -> dict[str, list[float]]:
        """The series as a dict: training terms, ``val_`` terms, ``beta``; ``seconds`` only with ``timings=True``."""
        rank = {"beta": 2, "seconds": 3}
        names = sorted(self._series, key=lambda n: rank.get(n, 1 if n.startswith("val_") else 0))
        return {n: list(self._series[n]) for n in names if self._series[n] and (timings or n != "seconds")}


def _fused_adam_applies(params) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` takes these parameters: dense floating point on a CPU or CUDA."""
    return all(p.is_floating_point() and not p.is_sparse and p.device.type in ("cpu", "cuda") for p in params)


def _default_objective(model):
    return reconstruction_terms if isinstance(model, Autoencoder) else elbo


def _check_objective(objective, model):
    """``objective`` if it is callable; ``None`` -> the model's default (ELBO, or reconstruction for an AE)."""
    if objective is not None and not callable(objective):
        _checks.fail("objective", "a function (model, x, generator=...) -> ELBOTerms or Objective",
                     type(objective).__name__, TypeError)
    return objective or _default_objective(model)


RESERVED = ("beta", "seconds")


def named_terms(out, batch: int | None = None) -> dict[str, torch.Tensor]:
    """The named per-example terms of an objective's output: ``reconstruction``, ``kl``, ``elbo`` for
    :class:`~vae_lesson.ELBOTerms`, ``out.terms`` for an :class:`~vae_lesson.core.bounds.Objective`.

    Checked: each a ``[batch]`` tensor under a name that is not ``beta``, ``seconds`` or ``val_...``
    (``History`` uses those). Shapes only: no value is read."""
    if isinstance(out, ELBOTerms):
        terms = dict(zip(TERMS, (out.reconstruction, out.kl, out.elbo)))
    elif isinstance(out, Objective):
        if not isinstance(out.terms, dict):
            _checks.fail("objective", "Objective.terms to be a dict {name: [batch] tensor}",
                         type(out.terms).__name__, TypeError)
        terms = out.terms
        batch = out.loss.shape[0] if batch is None and isinstance(out.loss, torch.Tensor) and out.loss.dim() else batch
    else:
        _checks.fail("objective", "a function returning ELBOTerms or Objective (vae_lesson.core.bounds)",
                     f"one returning {type(out).__name__}", TypeError)
    for name, value in terms.items():
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED or name.startswith("val_"):
            _checks.fail("objective", "term names that are identifiers other than beta, seconds and val_...",
                         repr(name))
        if not isinstance(value, torch.Tensor) or (batch is not None and tuple(value.shape) != (batch,)):
            _checks.fail("objective", f"each term a [batch] tensor ([{batch}])", f"{name!r}: "
                         + (f"shape {list(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__))
    return terms


def objective_loss(out, beta: float = 1.0) -> torch.Tensor:
    """The per-example loss ``[batch]`` that :func:`fit` minimises (its batch mean) for an objective's output.

    :class:`~vae_lesson.ELBOTerms`: ``-(reconstruction - beta * kl)``. :class:`~vae_lesson.core.bounds.Objective`:
    ``loss + beta * beta_term``, or ``loss`` when it has no ``beta_term`` (then ``beta`` must be 1: there is no
    KL term to weight)."""
    if isinstance(out, ELBOTerms):
        return -(out.reconstruction - beta * out.kl)
    if not isinstance(out, Objective):
        named_terms(out)  # raises the objective error
    if not isinstance(out.loss, torch.Tensor) or out.loss.dim() != 1:
        _checks.fail("objective", "Objective.loss to be a [batch] tensor",
                     f"shape {list(out.loss.shape)}" if isinstance(out.loss, torch.Tensor) else type(out.loss).__name__)
    if out.beta_term is None:
        if beta != 1.0:
            _checks.fail("beta", "1 (and kl_warmup_epochs=0): this objective has no KL term to weight (its terms: "
                         f"{', '.join(out.terms)})", beta)
        return out.loss
    return out.loss + beta * out.beta_term


def show_progress() -> bool:
    """Whether ``fit`` draws a progress bar by default.

    ``$VAE_LESSON_PROGRESS`` (``0``/``1``) decides when set -- the test suite sets 0, so that notebooks run under
    nbval keep stderr empty. Otherwise: yes in a Jupyter kernel or an interactive terminal, no in CI or a pipe.
    """
    env = os.environ.get(PROGRESS_ENV, "").strip().lower()
    if env:
        return env not in ("0", "false", "no", "off")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    try:
        shell = get_ipython().__class__.__name__  # type: ignore[name-defined]  # noqa: F821
        if shell == "ZMQInteractiveShell":
            return True
    except NameError:
        pass
    return sys.stderr.isatty()


def _check_data(name: str, X, model) -> torch.Tensor:
    """Check data ``X [n, D]`` for ``model``; float64 is cast once to the model's dtype (float32 passes as is)."""
    _checks.tensor(name, X, ndim=2, low=0.0, high=1.0)
    if X.shape[0] < 1:
        _checks.fail(name, "at least one example", "an empty tensor")
    input_dim = getattr(model, "input_dim", X.shape[1])
    if X.shape[1] != input_dim:
        _checks.fail(name, f"shape [n, {input_dim}] (the model's input_dim)", list(X.shape))
    return _checks.model_input(name, X, model)


def _check_model(model) -> torch.nn.Module:
    if not isinstance(model, torch.nn.Module):
        _checks.fail("model", "a torch.nn.Module such as vae_lesson.VAE", type(model).__name__, TypeError)
    params = list(model.parameters())
    if not any(p.requires_grad for p in params):
        _checks.fail("model", "a model with trainable parameters", f"{type(model).__name__} with none")
    bad = [name for name, p in model.named_parameters() if p.is_floating_point() and not bool(p.isfinite().all())]
    if bad:
        _checks.fail("model", "finite parameters (a model that diverged earlier? build a new one, or reload "
                     "a checkpoint)", f"NaN or inf in {', '.join(bad[:3])}" + (" ..." if len(bad) > 3 else ""),
                     _checks.NonFiniteError)
    return model


def _grads_finite(params) -> torch.Tensor:
    """Whether every gradient is finite, as a 0-d bool tensor (no host sync: ``fit`` reads it with the loss).

    ``aminmax`` per tensor (reads only; NaN and inf reach min or max), then one ``isfinite`` over the extremes."""
    extremes = [e for p in params if p.grad is not None and p.grad.numel() for e in torch.aminmax(p.grad.detach())]
    if not extremes:
        return torch.tensor(True)
    return torch.isfinite(torch.stack(extremes)).all()


def read_step(loss: torch.Tensor, params) -> tuple[float, bool]:
    """The one thing ``fit`` reads back from the device per step, in one host sync: the loss's value and whether
    every gradient of ``params`` is finite (checked before the update, so a diverging step changes nothing)."""
    loss_value, grads_ok = torch.stack([loss.detach().double(),
                                        torch.as_tensor(_grads_finite(params)).double()]).tolist()
    return loss_value, bool(grads_ok)


def _diverged(what: str, epoch: int, i: int, steps_per_epoch: int, step: int, lr: float) -> FloatingPointError:
    return FloatingPointError(
        f"fit: {what} at epoch {epoch}, step {i} of {steps_per_epoch} (global step {step + 1}); training "
        f"stopped before the update, so the model keeps its parameters from the step before. The learning rate "
        f"(lr={lr:g}) is probably too high: try lr={lr / 10:g}.")


@torch.no_grad()
def evaluate(model, X: torch.Tensor, n_samples: int = 1, batch_size: int = 1000,
             generator: torch.Generator | None = None, device=None, objective=None) -> dict[str, float]:
    """The means over ``X`` of the objective's named terms, per example, in eval mode, in batches.

    For the ELBO (the default for a VAE): ``{"reconstruction", "kl", "elbo"}`` in nats per example; for an
    objective returning an :class:`~vae_lesson.core.bounds.Objective`, one mean per name of its ``terms``.

    float64 ``X`` is cast once to the model's dtype; ``device`` (default: the model's) must be one this torch has.
    """
    if not isinstance(model, torch.nn.Module):
        _checks.fail("model", "a torch.nn.Module such as vae_lesson.VAE", type(model).__name__, TypeError)
    X = _check_data("X", X, model)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    objective = _check_objective(objective, model)
    if device is not None:
        device = _checks.device("device", device)
    elif next(model.parameters(), None) is None:
        _checks.fail("model", "a model with parameters", f"{type(model).__name__} with none")
    else:
        device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    kwargs = {"n_samples": n_samples} if objective is elbo else {}
    names, totals = None, None
    for start in range(0, X.shape[0], batch_size):
        xb = X[start:start + batch_size].to(device)
        terms = named_terms(objective(model, xb, generator=generator, **kwargs), xb.shape[0])
        if names is None:
            names = list(terms)
            totals = torch.zeros(len(names), dtype=torch.float64)
        elif list(terms) != names:
            _checks.fail("objective", f"the same term names at every call ({', '.join(names)})", ", ".join(terms))
        totals += torch.stack([t.sum() for t in terms.values()]).double().cpu()
    model.train(was_training)
    means = (totals / X.shape[0]).tolist()
    return dict(zip(names, means))


def fit(model, X: torch.Tensor, *, num_epochs: int = 10, batch_size: int = 128, lr: float = 1e-3,
        beta: float = 1.0, kl_warmup_epochs: float = 0, X_val: torch.Tensor | None = None,
        generator: torch.Generator | None = None, device=None, progress: bool | None = None,
        objective=None, binarize: bool = False) -> History:
    """Train ``model`` on the rows of ``X [n, D]`` (pixels in [0, 1]) with Adam; return the :class:`History`.

    * ``beta`` >= 0 weights the KL term (1 is the ELBO; see notebook 09 for beta-VAEs);
      ``kl_warmup_epochs`` ramps the weight linearly from 0 to ``beta`` over that many epochs (0: no warm-up).
    * ``X_val``: evaluated after every epoch (``val_*`` fields of the history).
    * ``generator``: shuffling and reparameterization noise; pass the one :func:`seed_everything` returned
      for bit-identical reruns.
    * ``device``: e.g. ``"cuda"``; default is the model's device (CPU). Data are moved there once.
    * ``progress``: a ``tqdm`` bar over epochs; default :func:`show_progress` (on in Jupyter, off in CI/tests).
    * ``objective(model, x, generator=...)``: returns :class:`~vae_lesson.ELBOTerms` (loss
      ``-(reconstruction - beta_t * kl)``; history series ``reconstruction``, ``kl``, ``elbo``) or an
      :class:`~vae_lesson.core.bounds.Objective` (its per-example ``loss``, plus ``beta_t * beta_term`` if it has
      one; one history series per named term). Default: ``elbo`` for a VAE, ``reconstruction_terms`` (series
      ``reconstruction``) for an ``Autoencoder``. ``beta`` other than 1 or a warm-up with an objective that has no
      KL term is a ``ValueError``.
    * ``binarize``: dynamic binarization. Every batch is replaced by a fresh Bernoulli draw of its grey pixels
      (drawn with ``generator``), so each epoch trains on a new binarization of ``X``; ``X_val`` is used as given
      (pass one fixed binarization, e.g. ``load_mnist("val", binarized=True)``).
    """
    _check_model(model)
    if not isinstance(binarize, bool):
        _checks.fail("binarize", "True or False", type(binarize).__name__, TypeError)
    X = _check_data("X", X, model)
    if X_val is not None:
        X_val = _check_data("X_val", X_val, model)
    num_epochs = _checks.integer("num_epochs", num_epochs, minimum=1)
    batch_size = _checks.integer("batch_size", batch_size, minimum=1)
    lr = _checks.number("lr", lr, positive=True)
    beta = _checks.number("beta", beta, minimum=0.0)
    kl_warmup_epochs = _checks.number("kl_warmup_epochs", kl_warmup_epochs, minimum=0.0)
    _checks.generator("generator", generator)
    objective = _check_objective(objective, model)
    if device is not None:
        model.to(_checks.device("device", device))
    device = next(model.parameters()).device
    X = X.to(device)
    shuffle_device = generator.device if generator is not None else torch.device("cpu")

    n = X.shape[0]
    steps_per_epoch = math.ceil(n / batch_size)
    warmup_steps = kl_warmup_epochs * steps_per_epoch
    optimizer_params = [p for p in model.parameters() if p.requires_grad]
    # Adam's whole update in one fused kernel (CPU and CUDA): torch.optim.Adam's default per-tensor
    # loop was about 3x slower here; where the fused kernel does not apply, the default
    optimizer = torch.optim.Adam(optimizer_params, lr=lr, fused=_fused_adam_applies(optimizer_params))
    history = History()
    use_bar = show_progress() if progress is None else bool(progress)
    epochs = range(1, num_epochs + 1)
    if use_bar:
        from tqdm.auto import tqdm

        epochs = tqdm(epochs, desc="epochs", unit="epoch")
    step = 0
    names = None  # the objective's term names, fixed at its first call
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        totals = None
        seen = 0
        order = torch.randperm(n, generator=generator, device=shuffle_device).to(device)
        beta_t = beta
        for i, start in enumerate(range(0, n, batch_size), start=1):
            xb = X.index_select(0, order[start:start + batch_size])  # [batch, D]; 6x faster than X[idx]
            if binarize:  # dynamic binarization: a fresh draw for every batch, so every epoch sees new images
                u = torch.rand(xb.shape, generator=generator, device=shuffle_device, dtype=xb.dtype).to(device)
                xb = (u < xb).to(xb.dtype)
            beta_t = beta * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else beta
            try:
                with _checks.data_checked_upstream():  # X was checked up front: shapes only, no value scans
                    out = objective(model, xb, generator=generator)
            except _checks.NonFiniteError as err:  # the data were checked: the model produced the NaN/inf
                raise _diverged(f"the model produced non-finite values ({err})", epoch, i, steps_per_epoch,
                                step, lr) from None
            terms = named_terms(out, xb.shape[0])
            if names is None:
                names = list(terms)
                weighted = isinstance(out, ELBOTerms) or out.beta_term is not None
                if not weighted:
                    for arg, value, neutral in (("beta", beta, 1.0), ("kl_warmup_epochs", kl_warmup_epochs, 0.0)):
                        if value != neutral:
                            _checks.fail(arg, f"{neutral:g}: the objective {getattr(objective, '__name__', '')} has "
                                         f"no KL term to weight (its terms: {', '.join(names)})", value)
            elif list(terms) != names:
                _checks.fail("objective", f"the same term names at every step ({', '.join(names)})",
                             ", ".join(terms))
            loss = objective_loss(out, beta_t).mean()
            optimizer.zero_grad()
            loss.backward()
            loss_value, grads_ok = read_step(loss, optimizer_params)  # the step's one host sync
            if not math.isfinite(loss_value):
                raise _diverged(f"the loss became {loss_value}", epoch, i, steps_per_epoch, step, lr)
            if not grads_ok:
                optimizer.zero_grad()
                raise _diverged(f"a gradient became non-finite (the loss was {loss_value:.4g})", epoch, i,
                                steps_per_epoch, step, lr)
            optimizer.step()
            step += 1
            with torch.no_grad():
                sums = torch.stack([t.sum() for t in terms.values()]).double()
                totals = sums if totals is None else totals + sums
            seen += xb.shape[0]
        means = (totals / seen).tolist()
        for name, value in zip(names, means):
            history._record(name, value)
        if weighted:
            history._record("beta", beta_t)
        if X_val is not None:
            try:
                val = evaluate(model, X_val, generator=generator, objective=objective, batch_size=1000)
            except _checks.NonFiniteError as err:
                raise FloatingPointError(
                    f"fit: evaluating X_val after epoch {epoch} (global step {step}), the model produced "
                    f"non-finite values ({err}). The learning rate (lr={lr:g}) is probably too high: "
                    f"try lr={lr / 10:g}.") from None
            for name in names:
                history._record(f"val_{name}", val[name])
        history._record("seconds", time.perf_counter() - started)
        if use_bar:
            main = "elbo" if "elbo" in names else names[0]  # the ELBO when the objective has one
            shown = f"val_{main}" if X_val is not None else main
            epochs.set_postfix({shown: f"{history[shown][-1]:.1f}"})
    model.eval()
    return history
