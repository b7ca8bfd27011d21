r"""Training in memory: :func:`fit` and :func:`evaluate`.

``fit`` is the plain loop a course needs and nothing more: shuffle indices with a seeded generator, slice
mini-batches from a tensor already in memory (no ``DataLoader``), take an Adam step on

$$\text{loss} = -\frac1B\sum_{n=1}^B\Big[\text{reconstruction}_n - \beta_t\,\text{kl}_n\Big],$$

and record per-epoch means of the terms in **nats per example** (summed over pixels). $\beta_t$ ramps
linearly from 0 to ``beta`` over ``kl_warmup_epochs`` (KL warm-up); the recorded ``elbo`` is always the
unweighted ``reconstruction - kl``. Train-set numbers are running means over the epoch's batches (the model
changes during the epoch); validation numbers are computed after the epoch, in eval mode.

Divergence: if the loss or a gradient turns NaN or infinite, or the model produces a non-finite value while
computing the loss (e.g. ``exp(logvar)`` overflowing), training stops at once with ``FloatingPointError`` naming the
epoch, the step, the learning rate and a hint, **before** that step's update: the model keeps the (finite)
parameters it had after the last good step. float64 data are cast once to the model's dtype.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field

import torch

from vae_lesson import _checks
from vae_lesson.core.bounds import ELBOTerms, elbo, reconstruction_terms
from vae_lesson.core.models import Autoencoder

PROGRESS_ENV = "VAE_LESSON_PROGRESS"
TERMS = ("reconstruction", "kl", "elbo")


@dataclass
class History:
    """Per-epoch record of :func:`fit`; each field is a list with one float per epoch (nats per example)."""

    reconstruction: list[float] = field(default_factory=list)
    kl: list[float] = field(default_factory=list)
    elbo: list[float] = field(default_factory=list)
    val_reconstruction: list[float] = field(default_factory=list)
    val_kl: list[float] = field(default_factory=list)
    val_elbo: list[float] = field(default_factory=list)
    beta: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        return getattr(self, key)

    def __len__(self) -> int:
        return len(self.elbo)

    def as_dict(self, timings: bool = False) -> dict[str, list[float]]:
        """The non-empty fields as a dict (wall-clock ``seconds`` only with ``timings=True``)."""
        out = {k: list(v) for k, v in self.__dict__.items() if v}
        if not timings:
            out.pop("seconds", None)
        return out


def _fused_adam_applies(params) -> bool:
    """Whether ``torch.optim.Adam(fused=True)`` takes these parameters: dense floating point on a CPU or CUDA."""
    return all(p.is_floating_point() and not p.is_sparse and p.device.type in ("cpu", "cuda") for p in params)


def _default_objective(model):
    return reconstruction_terms if isinstance(model, Autoencoder) else elbo


def _check_objective(objective, model):
    """``objective`` if it is callable; ``None`` -> the model's default (ELBO, or reconstruction for an AE)."""
    if objective is not None and not callable(objective):
        _checks.fail("objective", "a function (model, x, generator=...) -> ELBOTerms", type(objective).__name__,
                     TypeError)
    return objective or _default_objective(model)


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


def _grads_finite(params) -> bool:
    """Whether every gradient is finite: ``aminmax`` per tensor (reads only; NaN and inf reach min or max).

    Measured: no difference in an epoch's time on MNIST (the step's matmuls dominate)."""
    for p in params:
        if p.grad is not None and p.grad.numel():
            lo, hi = torch.aminmax(p.grad.detach())
            if not (math.isfinite(float(lo)) and math.isfinite(float(hi))):
                return False
    return True


def _diverged(what: str, epoch: int, i: int, steps_per_epoch: int, step: int, lr: float) -> FloatingPointError:
    return FloatingPointError(
        f"fit: {what} at epoch {epoch}, step {i} of {steps_per_epoch} (global step {step + 1}); training "
        f"stopped before the update, so the model keeps its parameters from the step before. The learning rate "
        f"(lr={lr:g}) is probably too high: try lr={lr / 10:g}.")


@torch.no_grad()
def evaluate(model, X: torch.Tensor, n_samples: int = 1, batch_size: int = 1000,
             generator: torch.Generator | None = None, device=None, objective=None) -> dict[str, float]:
    """Mean ``reconstruction``, ``kl`` and ``elbo`` over ``X`` (nats per example), in eval mode, in batches.

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
    totals = torch.zeros(3, dtype=torch.float64)
    kwargs = {"n_samples": n_samples} if objective is elbo else {}
    for start in range(0, X.shape[0], batch_size):
        xb = X[start:start + batch_size].to(device)
        terms: ELBOTerms = objective(model, xb, generator=generator, **kwargs)
        totals += torch.stack([terms.reconstruction.sum(), terms.kl.sum(), terms.elbo.sum()]).double().cpu()
    model.train(was_training)
    means = (totals / X.shape[0]).tolist()
    return dict(zip(TERMS, means))


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
    * ``objective(model, x, generator=...) -> ELBOTerms``: default ``elbo`` for a VAE and the reconstruction
      log-likelihood for an ``Autoencoder``.
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
    for epoch in epochs:
        started = time.perf_counter()
        model.train()
        totals = torch.zeros(3, dtype=torch.float64, device=device)
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
                terms = objective(model, xb, generator=generator)
            except _checks.NonFiniteError as err:  # the data were checked: the model produced the NaN/inf
                raise _diverged(f"the model produced non-finite values ({err})", epoch, i, steps_per_epoch,
                                step, lr) from None
            loss = -(terms.reconstruction - beta_t * terms.kl).mean()
            optimizer.zero_grad()
            loss.backward()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise _diverged(f"the loss became {loss_value}", epoch, i, steps_per_epoch, step, lr)
            if not _grads_finite(optimizer_params):
                optimizer.zero_grad()
                raise _diverged(f"a gradient became non-finite (the loss was {loss_value:.4g})", epoch, i,
                                steps_per_epoch, step, lr)
            optimizer.step()
            step += 1
            with torch.no_grad():
                totals += torch.stack([terms.reconstruction.sum(), terms.kl.sum(), terms.elbo.sum()]).double()
            seen += xb.shape[0]
        means = (totals / seen).tolist()
        for name, value in zip(TERMS, means):
            history[name].append(value)
        history.beta.append(beta_t)
        if X_val is not None:
            try:
                val = evaluate(model, X_val, generator=generator, objective=objective, batch_size=1000)
            except _checks.NonFiniteError as err:
                raise FloatingPointError(
                    f"fit: evaluating X_val after epoch {epoch} (global step {step}), the model produced "
                    f"non-finite values ({err}). The learning rate (lr={lr:g}) is probably too high: "
                    f"try lr={lr / 10:g}.") from None
            for name in TERMS:
                history[f"val_{name}"].append(val[name])
        history.seconds.append(time.perf_counter() - started)
        if use_bar:
            shown = history.val_elbo[-1] if X_val is not None else history.elbo[-1]
            epochs.set_postfix({"val_elbo" if X_val is not None else "elbo": f"{shown:.1f} nats"})
    model.eval()
    return history
