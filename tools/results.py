r"""One table that compares every model of the course on the same data: ``python -m tools.results``.

Every model of :data:`MODELS` is trained ``seeds`` times, from ``seed_everything(s)`` for s = 0, 1, ... (so no
number depends on the order of the table), on the MNIST "train" split with the same recipe (:data:`TRAIN`,
:data:`FULL`: 20 epochs of Adam, batches of 128, learning rate $10^{-3}$), and evaluated on all test images, in
nats per image, averaged over the seeds:

* test $-\text{ELBO} = D + R$: distortion $D = -\mathbb E_{q}\log p_\theta(x\mid z)$ (``elbo_samples`` draws of
  $z$ per image) plus rate $R = \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ (closed form; a Monte Carlo estimate for
  the learned priors, whose KL has none; both layers' KLs for the hierarchical VAE; the $T - 1$ denoising KLs plus
  the prior KL for the diffusion model);
* each model's tightest bound on $\log p_\theta(x)$: IWAE with $k = 1000$ (:func:`vae_lesson.iwae_bound`) for the
  Gaussian VAEs, $\log\sum_y p(y)\,\hat p(x\mid y)$ for the CVAE (the marginal, not $\log p(x\mid y)$), the
  neighbour sum (:func:`vae_lesson.variants.vq_vae.neighbour_bound`) for the VQ-VAE, whose point-mass $q$ makes IWAE-$k$
  equal its ELBO, IWAE-$k$ with the learned $\log p_\lambda(z)$ in the weights for the VampPrior and MoG-prior VAEs
  (:func:`vae_lesson.variants.learned_priors.learned_prior_iwae`), IWAE-$k$ over both layers for the hierarchical
  VAE, and for the diffusion model its full $(T+1)$-term ELBO itself (no IWAE here); its standard error across
  images, bits per dimension $= -\log p_\theta(x) / (784 \ln 2)$, the paired difference from the VAE row with its
  standard error, and the spread over seeds;
* the Fréchet distance of samples to the test images (:func:`vae_lesson.analysis.diagnostics.frechet_distance`) with the
  floor of real training images; parameters, training seconds and active units
  (:func:`vae_lesson.analysis.collapse.active_units`; per layer for the hierarchical VAE).

The only choice made from data, the VQ-VAE prior's stopping step, uses the "val" split. Most rows see grey pixels
with a Bernoulli likelihood, a cross-entropy rather than a normalised density: the table says so. The rows with
``data="binarized"`` train on dynamically binarized images (``fit(..., binarize=True)``) and are scored on one fixed
binarization of the test split (``load_mnist("test", binarized=True)``): log-probabilities of binary images, the
units of published binarized-MNIST results; their paired differences are from the binarized VAE.

**Adding a row**: append a :class:`Spec` to :data:`MODELS` (a ``key`` for ``--only``, a ``build`` function,
``fit_kwargs``, ``data`` and the ``reference`` row of its paired difference); ``kind`` says how it is evaluated.
``python -m tools.results --only KEY ...`` trains and evaluates just those rows (and their reference rows) and merges
them into the existing ``results.json``/``README.md`` of ``--out``, so a new row costs minutes, not the whole run.
:data:`QUICK` is a tiny configuration for the tests (``--quick``). Not here: any new model or objective; everything is
imported from the modules that teach it.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import math
import os
import pathlib
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from vae_lesson import (
    VAE,
    Autoencoder,
    ELBOTerms,
    _checks,
    bits_per_dim,
    elbo,
    evaluate,
    fit,
    iwae_bound,
    load_mnist,
    seed_everything,
)
from vae_lesson.analysis.collapse import active_units
from vae_lesson.analysis.diagnostics import frechet_distance, pca_basis
from vae_lesson.variants.conv_vae import ConvVAE
from vae_lesson.variants.cvae import ConditionalVAE, conditional_elbo, fit_conditional, log_weights_per_label
from vae_lesson.variants.diffusion import Diffusion, diffusion_bound, diffusion_objective
from vae_lesson.variants.hierarchical import (
    HierarchicalVAE,
    active_units_per_layer,
    hierarchical_elbo,
    hierarchical_elbo_terms,
    hierarchical_iwae,
)
from vae_lesson.variants.iwae_training import iwae_objective
from vae_lesson.variants.learned_priors import (
    LearnedPriorVAE,
    kl_monte_carlo,
    learned_prior_elbo,
    learned_prior_iwae,
)
from vae_lesson.variants.vq_vae import VQVAE, AutoregressivePrior, neighbour_bound, perplexity, vq_bound, vq_objective

D_PIXELS, LATENT_DIM, HIDDEN_DIMS = 784, 20, (400,)  # the 784-400-20 MLP of notebook 06
TRAIN = dict(batch_size=128, lr=1e-3)  # shared by every model; the number of epochs is in the Budget
SEED, EVAL_SEED = 0, 1  # seed_everything(SEED) before each model; a fresh generator(EVAL_SEED) for its evaluation
ACTIVE_THRESHOLD = 0.01  # Burda et al.: unit j is active when Var_x(mu_j(x)) > 0.01
PRIOR = dict(batch_size=256, lr=1e-2)  # Adam on -log pi(k) of the VQ-VAE's training codes (notebook 12)
KINDS = ("ae", "vae", "cvae", "vq", "learned-prior", "hierarchical", "diffusion")
DATA = ("grey", "binarized")  # what the row trains and is scored on: grey pixels, or binarized images
NUM_CLASSES = 10  # digit labels, for the CVAE


@dataclass(frozen=True)
class Spec:
    """One row of the table: its name, the "what it is" cell, a constructor, how to train and evaluate it."""

    name: str
    about: str
    build: Callable[[], nn.Module]
    # "ae": no bound; "vae": Gaussian q(z|x), prior N(0, I); "cvae": q and p see the label; "vq": codebook;
    # "learned-prior": the VAE with a learned mixture prior (Monte Carlo KL); "hierarchical": two latent layers;
    # "diffusion": T fixed Gaussian encoder steps, a learned reverse chain (no IWAE: its bound is the ELBO)
    kind: str = "vae"
    fit_kwargs: dict = field(default_factory=dict)  # extra arguments of fit: beta, objective, binarize
    key: str = ""  # the row's name on the command line (--only KEY); default: derived from the name
    data: str = "grey"  # "grey": grey test pixels; "binarized": dynamic binarization, fixed binarized test split
    reference: str = "VAE"  # the row whose per-image -log p(x) its paired difference is taken from
    kl_warmup: float = 0.0  # KL warm-up over this fraction of the epochs (fit's kl_warmup_epochs); 0: none

    @property
    def cli_key(self) -> str:
        return self.key or "".join(c if c.isalnum() else "-" for c in self.name.lower()).strip("-")


def _mlp_vae() -> VAE:
    return VAE(D_PIXELS, LATENT_DIM, HIDDEN_DIMS)


N_COMPONENTS = 50  # the learned priors' mixture components (notebook 15)
HIERARCHY = dict(latent_dims=(LATENT_DIM, 8), top_hidden=64)  # z1 of 20 dimensions under z2 of 8 (notebook 15)
DIFFUSION = dict(num_steps=10, embed_dim=32, log_snr_max=1.0, log_snr_min=-5.0)  # notebook 16


def _learned_prior_vae(prior: str) -> Callable[[], LearnedPriorVAE]:
    return lambda: LearnedPriorVAE(D_PIXELS, LATENT_DIM, HIDDEN_DIMS, prior=prior, n_components=N_COMPONENTS)


MODELS = (
    Spec("AE", "784-400-20 MLP autoencoder, Bernoulli reconstruction loss; no prior, no bound",
         lambda: Autoencoder(D_PIXELS, LATENT_DIM, HIDDEN_DIMS), "ae", key="ae"),
    Spec("VAE", "784-400-20 MLP, Gaussian q(z\\|x), prior N(0, I), Bernoulli decoder; trained on the ELBO",
         _mlp_vae, key="vae"),
    Spec("β-VAE, β = 0.5", "the VAE trained on reconstruction − 0.5·KL (more rate)", _mlp_vae,
         fit_kwargs={"beta": 0.5}, key="beta-0.5"),
    Spec("β-VAE, β = 4", "the VAE trained on reconstruction − 4·KL (less rate)", _mlp_vae, fit_kwargs={"beta": 4.0},
         key="beta-4"),
    Spec("CVAE", "the VAE with the digit label (one-hot × 10) fed to encoder and decoder",
         lambda: ConditionalVAE(D_PIXELS, LATENT_DIM, 10, HIDDEN_DIMS), "cvae", key="cvae"),
    Spec("IWAE, k = 5", "the VAE trained on the 5-sample importance-weighted bound (5 decoder passes per image)",
         _mlp_vae, fit_kwargs={"objective": iwae_objective(5)}, key="iwae"),
    Spec("VQ-VAE", "784-400-64 MLP, 8 positions × 32 codes of size 8, commitment 0.25; autoregressive prior "
         "fitted to the training codes afterwards", lambda: VQVAE(D_PIXELS, 8, 8, 32, HIDDEN_DIMS), "vq",
         {"objective": vq_objective(0.25)}, key="vq"),
    Spec("Conv VAE", "conv encoder 1→16→32 channels (4×4, stride 2), mirrored transposed-conv decoder, 20-d z; "
         "the ELBO", lambda: ConvVAE(28, LATENT_DIM, (16, 32)), key="conv"),
    Spec("VAE, binarized", "the VAE trained on dynamically binarized images (a fresh Bernoulli draw of every batch), "
         "scored on one fixed binarization of the test images", _mlp_vae, fit_kwargs={"binarize": True},
         key="vae-bin", data="binarized", reference="VAE, binarized"),
    Spec("IWAE, k = 5, binarized", "the IWAE (k = 5) trained on dynamically binarized images, scored on the fixed "
         "binarized test images", _mlp_vae, fit_kwargs={"objective": iwae_objective(5), "binarize": True},
         key="iwae-bin", data="binarized", reference="VAE, binarized"),
    Spec("VampPrior VAE", f"the VAE with a VampPrior: p(z) = mean of q(z\\|u_k) over {N_COMPONENTS} learned "
         "pseudo-inputs u_k (started at random training images); the ELBO with a Monte Carlo KL",
         _learned_prior_vae("vamp"), "learned-prior", {"objective": learned_prior_elbo}, key="vamp"),
    Spec("MoG-prior VAE", f"the VAE with a learned mixture of {N_COMPONENTS} diagonal Gaussians as p(z) (means, "
         "variances, weights); the ELBO with a Monte Carlo KL", _learned_prior_vae("mog"), "learned-prior",
         {"objective": learned_prior_elbo}, key="mog"),
    Spec("Hierarchical VAE", "two latent layers, z1 (20-d) under z2 (8-d): 784-400 bottom-up, q(z2\\|x), "
         "q(z1\\|x, z2) and p(z1\\|z2) MLPs of 64 units, the VAE's decoder p(x\\|z1); the ELBO with KL warm-up "
         "over all epochs", lambda: HierarchicalVAE(D_PIXELS, hidden_dims=HIDDEN_DIMS, **HIERARCHY), "hierarchical",
         {"objective": hierarchical_elbo}, key="hierarchical", kl_warmup=1.0),
    Spec("Diffusion, T = 10", "10 fixed Gaussian encoder steps (log SNR 1 → −5), a shared 784+32-400-1568 MLP "
         "reverse model with a step embedding, Bernoulli p(x\\|z_1); the ELBO with one sampled step per image",
         lambda: Diffusion(D_PIXELS, hidden_dims=HIDDEN_DIMS, **DIFFUSION), "diffusion",
         {"objective": diffusion_objective}, key="diffusion"),
)


@dataclass(frozen=True)
class Budget:
    """How much to train and evaluate: ``seeds`` trainings per model on the first ``n_train`` training images,
    the VQ-VAE prior's stopping step chosen on ``n_val`` validation images, every number on ``n_test`` test images
    (IWAE with ``k`` samples, the ELBO with ``elbo_samples`` draws, ``n_samples`` samples for the Fréchet distance),
    at most ``prior_steps`` Adam steps for the VQ-VAE's prior."""

    num_epochs: int = 20
    n_train: int = 3500
    n_val: int = 500
    n_test: int = 1000
    k: int = 1000
    elbo_samples: int = 10
    prior_steps: int = 300
    seeds: int = 3
    n_samples: int = 1000

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _checks.integer(f.name, getattr(self, f.name), minimum=1)
        if self.k < NUM_CLASSES:
            _checks.fail("k", f"at least {NUM_CLASSES} (the CVAE splits k over its {NUM_CLASSES} labels)", self.k)


FULL = Budget()
QUICK = Budget(num_epochs=1, n_train=256, n_val=64, n_test=100, k=20, elbo_samples=2, prior_steps=20, seeds=2,
               n_samples=100)


def fit_code_prior(model: VQVAE, X: torch.Tensor, steps: int, generator=None, X_val: torch.Tensor | None = None,
                   every: int = 25):
    """An :class:`AutoregressivePrior` fitted by Adam (:data:`PRIOR`) to the codes of ``X [n, D]``: ``(prior, step)``.

    With ``X_val``, the prior is evaluated on the validation codes every ``every`` steps and the state with the
    highest mean $\\log\\pi$ there is kept (early stopping: the one choice made from data); else all ``steps``."""
    codes = model.codes(X)  # [n, P]
    val_codes = model.codes(X_val) if X_val is not None else None  # [n_val, P]
    prior = AutoregressivePrior(model.num_positions, model.num_codes)
    optimizer = torch.optim.Adam(prior.parameters(), lr=PRIOR["lr"])
    best, best_step, best_state = -math.inf, steps, None
    for step in range(1, steps + 1):
        batch = codes[torch.randint(0, len(codes), (PRIOR["batch_size"],), generator=generator)]  # [256, P]
        loss = -prior.log_prob(batch).mean()  # nats per code sequence
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if val_codes is not None and (step % every == 0 or step == steps):
            with torch.no_grad():
                score = prior.log_prob(val_codes).mean().item()  # nats per validation code sequence
            if score > best:
                best, best_step, best_state = score, step, copy.deepcopy(prior.state_dict())
    if best_state is not None:
        prior.load_state_dict(best_state)
    return prior.eval(), best_step


def train(spec: Spec, X: torch.Tensor, y: torch.Tensor, budget: Budget, seed: int = SEED,
          X_val: torch.Tensor | None = None):
    """Train ``spec``'s model from ``seed_everything(seed)``: ``(model, prior or None, seconds, prior step)``."""
    _checks.choice("spec.kind", spec.kind, KINDS)
    generator = seed_everything(seed)
    model = spec.build()
    kwargs = dict(num_epochs=budget.num_epochs, generator=generator, progress=False, **TRAIN, **spec.fit_kwargs)
    if spec.kl_warmup:
        kwargs["kl_warmup_epochs"] = spec.kl_warmup * budget.num_epochs
    started = time.perf_counter()
    if isinstance(model, LearnedPriorVAE) and model.prior_kind == "vamp":
        model.init_pseudo_inputs(X, generator=generator)  # part of training: its draws come from the same generator
    if spec.kind == "cvae":
        fit_conditional(model, X, y, **kwargs)
    else:
        fit(model, X, **kwargs)
    prior, step = (fit_code_prior(model, X, budget.prior_steps, generator, X_val) if spec.kind == "vq"
                   else (None, None))
    return model.eval(), prior, time.perf_counter() - started, step


def _per_image_elbo(model, X, S: int, generator, y=None, objective=None) -> ELBOTerms:
    """ELBO terms per test image (``[n]`` each, nats), ``S`` draws of z, in batches of 500; ``objective(model, x,
    S, generator)`` in place of :func:`vae_lesson.elbo` (the learned priors' ELBO), or the CVAE's with labels ``y``."""
    objective = elbo if objective is None else objective
    parts = [objective(model, X[s:s + 500], S, generator) if y is None else
             conditional_elbo(model, X[s:s + 500], y[s:s + 500], S, generator) for s in range(0, len(X), 500)]
    return ELBOTerms(*(torch.cat([getattr(p, f) for p in parts]) for f in ("elbo", "reconstruction", "kl")))


def _diffusion_elbo(model: Diffusion, X, S: int, generator) -> ELBOTerms:
    """The diffusion model's full (T+1)-term ELBO per image (``[n]`` each, nats), the mean of ``S`` independent
    :func:`~vae_lesson.variants.diffusion.diffusion_bound` evaluations (each one draw of every z_t): ``kl`` is
    the T − 1 step KLs plus the prior KL."""
    bounds = [diffusion_bound(model, X, generator=generator) for _ in range(S)]
    reconstruction = torch.stack([b.reconstruction for b in bounds]).mean(0)  # [n]
    kl = torch.stack([b.step_kls.sum(1) + b.prior_kl for b in bounds]).mean(0)  # [n]
    return ELBOTerms(reconstruction - kl, reconstruction, kl)


@torch.no_grad()
def _cvae_bounds(model: ConditionalVAE, X, y, k: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(marginal, conditional)``, ``[n]`` nats each: $\log\sum_c p(c)\,\hat p_k(x\mid c)$ with $p(c) = 1/K$ (the
    training labels are balanced) and $\hat p_k(x\mid c)$ the IWAE-$k/K$ estimate of each label, and the IWAE-$k/K$
    bound of the true label, $\log\hat p_k(x\mid y)$. The first is the log of an unbiased estimate of $p(x)$: a lower
    bound on $\log p(x)$ in expectation."""
    per_label_k = k // model.num_classes
    log_w = log_weights_per_label(model, X, per_label_k, generator)  # [k/K, n, K]
    per_label = torch.logsumexp(log_w, 0) - math.log(per_label_k)  # [n, K], IWAE bound of each label
    marginal = torch.logsumexp(per_label, 1) - math.log(model.num_classes)  # [n]
    return marginal, per_label.gather(1, y[:, None]).squeeze(1)


@torch.no_grad()
def _samples(spec: Spec, model, prior, n: int, generator) -> torch.Tensor | None:
    """``n`` samples (pixel probabilities ``[n, D]``) from the model's prior, or None for the autoencoder."""
    if spec.kind == "ae":
        return None
    if spec.kind == "vq":
        return torch.sigmoid(model.decode_indices(prior.sample(n, generator)))
    if spec.kind == "cvae":
        labels = torch.randint(0, model.num_classes, (n,), generator=generator)  # p(y) = 1/K
        z = torch.randn(n, model.latent_dim, generator=generator)  # [n, latent_dim]
        return torch.sigmoid(model.decode(z, labels))
    return model.sample(n, generator=generator)


@torch.no_grad()
def evaluate_model(spec: Spec, model, prior, X: torch.Tensor, y: torch.Tensor, budget: Budget, basis=None,
                   seed: int = SEED, X_fd: torch.Tensor | None = None) -> dict:
    """One seed's numbers on test images ``X [n, D]`` (labels ``y``): nats per image, ``None`` where undefined.

    ``log_px`` (a ``[n]`` tensor, not JSON) is the bound of the −log p(x) column per image: IWAE-k, the CVAE's
    marginal bound, or the VQ-VAE's neighbour sum; ``basis`` (``pca_basis`` of the training images) enables the
    Fréchet distance of ``n_samples`` samples to the test images (``X_fd``, default ``X``: the grey test images for a
    binarized row, whose samples are pixel probabilities)."""
    generator = torch.Generator().manual_seed(EVAL_SEED + seed)
    S, k = budget.elbo_samples, budget.k
    row = dict(neg_elbo=None, distortion=None, rate=None, neg_log_px=None, log_px=None, iwae_gain=None,
               active_units=None, fd=None, notes={})
    if spec.kind == "ae":
        row["distortion"] = -evaluate(model, X)["reconstruction"]
        return row
    if spec.kind == "vq":
        terms = vq_bound(model, X, prior)  # [n] each, kl = -log pi(k(x)): the point-mass ELBO
        log_px = neighbour_bound(model, X, prior)  # [n], the sum over k(x) and its single-position neighbours
        row["notes"].update(neg_elbo_uniform_prior=-vq_bound(model, X).elbo.mean().item(),
                            perplexity=perplexity(model.codes(X), model.num_codes).item(),
                            prior_parameters=sum(p.numel() for p in prior.parameters()))
    elif spec.kind == "cvae":
        terms = _per_image_elbo(model, X, S, generator, y)  # bounds on log p(x | y)
        log_px, conditional = _cvae_bounds(model, X, y, k, generator)
        row["notes"]["neg_log_px_given_y"] = -conditional.mean().item()
        row["notes"]["iwae_gain_given_y"] = (conditional - terms.elbo).mean().item()
        mu_var = model.encode(X, y)[0].var(0, unbiased=False)  # [latent_dim], Var_x mu_j(x, y)
    elif spec.kind == "learned-prior":
        terms = _per_image_elbo(model, X, S, generator, objective=learned_prior_elbo)  # kl: Monte Carlo, S draws
        mc = kl_monte_carlo(model, X, S, generator)  # [n] each: the same estimator on fresh draws, with its s.e.
        row["notes"]["rate_mc_se"] = (mc.se.pow(2).sum().sqrt() / len(X)).item()  # s.e. of the mean rate
        log_px = learned_prior_iwae(model, X, k, generator=generator)  # [n], log p_lambda(z) in the weights
        mu_var = active_units(model.vae, X, ACTIVE_THRESHOLD).activity  # [latent_dim]
    elif spec.kind == "hierarchical":
        parts = [hierarchical_elbo_terms(model, X[s:s + 500], S, generator) for s in range(0, len(X), 500)]
        split = {f: torch.cat([getattr(p, f) for p in parts]) for f in ("elbo", "reconstruction", "kl_z1", "kl_z2")}
        terms = ELBOTerms(split["elbo"], split["reconstruction"], split["kl_z1"] + split["kl_z2"])
        row["notes"].update(rate_z1=split["kl_z1"].mean().item(), rate_z2=split["kl_z2"].mean().item())
        log_px = hierarchical_iwae(model, X, k, generator=generator)  # [n]
        layers = active_units_per_layer(model, X, ACTIVE_THRESHOLD, generator=generator)
        mu_var = layers["z1"].activity  # [d1], the column's units
        row["notes"]["activity_z2"] = layers["z2"].activity.tolist()  # [d2]
        row["notes"]["active_units_z2_per_seed"] = layers["z2"].count
    elif spec.kind == "diffusion":
        terms = _diffusion_elbo(model, X, S, generator)
        log_px = terms.elbo  # no IWAE here: the tightest bound this model has is its ELBO
        row["notes"]["num_steps"] = model.num_steps
    else:
        terms = _per_image_elbo(model, X, S, generator)
        log_px = iwae_bound(model, X, k, generator=generator)  # [n]
        mu_var = active_units(model, X, ACTIVE_THRESHOLD).activity  # [latent_dim]
    row.update(neg_elbo=-terms.elbo.mean().item(), distortion=-terms.reconstruction.mean().item(),
               rate=terms.kl.mean().item(), neg_log_px=-log_px.mean().item(), log_px=log_px)
    gain = (conditional if spec.kind == "cvae" else log_px) - terms.elbo  # [n], the same images
    row["iwae_gain"] = gain.mean().item()
    if spec.kind not in ("vq", "diffusion"):
        row["active_units"] = int((mu_var > ACTIVE_THRESHOLD).sum())
        row["notes"]["activity"] = mu_var.tolist()  # [latent_dim], Var_x mu_j(x): how far above the threshold
    if basis is not None:
        row["fd"] = frechet_distance(_samples(spec, model, prior, budget.n_samples, generator),
                                     X if X_fd is None else X_fd, basis)
    return row


def _mean_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean of ``[n]`` per-image values and its standard error across images (sd / sqrt(n))."""
    return values.mean().item(), (values.std() / math.sqrt(len(values))).item()


def _summarise(per_seed: list[dict], reference: list[dict] | None) -> dict:
    """Average one model's seeds; the paired difference of −log p(x) from ``reference`` (its reference row's seeds,
    on the same test images)."""
    out = {}
    for key in ("neg_elbo", "distortion", "rate", "neg_log_px", "iwae_gain", "fd", "active_units"):
        values = [r[key] for r in per_seed]
        if values[0] is None:
            out[key] = None
            continue
        out[key] = sum(values) / len(values)
        out[key + "_seeds"] = values
    out["neg_log_px_se"] = out["diff_vs_vae"] = out["diff_vs_vae_se"] = None
    if per_seed[0]["log_px"] is not None:
        log_px = torch.stack([r["log_px"] for r in per_seed]).mean(0)  # [n], averaged over seeds
        out["neg_log_px_se"] = _mean_se(log_px)[1]
        if reference is not None:
            ref = torch.stack([r["log_px"] for r in reference]).mean(0)  # [n]
            out["diff_vs_vae"], out["diff_vs_vae_se"] = _mean_se(ref - log_px)  # > 0: worse than the VAE
    notes = {}
    for key in per_seed[0]["notes"]:
        values = [r["notes"][key] for r in per_seed]
        if key.endswith("_per_seed"):
            notes[key] = values
        else:
            first_seed = key in ("activity", "activity_z2", "prior_parameters", "num_steps")
            notes[key] = values[0] if first_seed else sum(values) / len(values)
        if key in ("activity", "activity_z2"):
            notes[key.replace("activity", "weakest") + "_seeds"] = [min(v) for v in values]
    out["notes"] = notes
    return out


def run(budget: Budget = FULL, models=MODELS, log: Callable[[str], None] | None = None) -> dict:
    """Train and evaluate each of ``models`` for ``budget.seeds`` seeds; ``{"meta": ..., "rows": [...]}`` (JSON)."""
    if not isinstance(budget, Budget):
        _checks.fail("budget", "a tools.results.Budget", type(budget).__name__, TypeError)
    started = time.perf_counter()
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # its first use imports torch._dynamo (~2 s): not training time
    X, y = (t[:budget.n_train] for t in load_mnist("train"))  # [n_train, 784], [n_train]
    X_val = load_mnist("val")[0][:budget.n_val]  # [n_val, 784]: the VQ-VAE prior's stopping step
    X_test, y_test = (t[:budget.n_test] for t in load_mnist("test"))  # [n_test, 784], [n_test]
    X_test_bin = load_mnist("test", binarized=True)[0][:budget.n_test]  # one fixed binarization (binarize_seed 0)
    basis = pca_basis(X, 20)  # the Fréchet distance's features: top 20 principal components of the training images
    floor = frechet_distance(X[:budget.n_samples], X_test, basis)  # real training digits against the test digits
    seeds = [SEED + s for s in range(budget.seeds)]
    rows, per_seed_of = [], {}
    for spec in models:
        _checks.choice("spec.data", spec.data, DATA)
        X_eval = X_test_bin if spec.data == "binarized" else X_test
        per_seed, seconds, evaluated, steps = [], [], 0.0, []
        for seed in seeds:
            model, prior, train_seconds, step = train(spec, X, y, budget, seed, X_val)
            t0 = time.perf_counter()
            per_seed.append(evaluate_model(spec, model, prior, X_eval, y_test, budget, basis, seed, X_fd=X_test))
            evaluated += time.perf_counter() - t0
            seconds.append(train_seconds)
            steps.append(step)
        per_seed_of[spec.name] = per_seed
        reference = per_seed_of.get(spec.reference)  # None when the reference row is not part of this run
        row = {"name": spec.name, "about": spec.about, "kind": spec.kind, "key": spec.cli_key, "data": spec.data,
               "reference": spec.reference,
               "parameters": sum(p.numel() for p in model.parameters())
               + (sum(p.numel() for p in prior.parameters()) if prior is not None else 0),
               "train_seconds": sum(seconds) / len(seconds), "eval_seconds": evaluated / len(seeds),
               **_summarise(per_seed, reference)}
        if spec.kind == "vq":
            row["notes"]["prior_steps_chosen"] = steps
        for key, name in (("neg_log_px", "bits_per_dim"), ("neg_elbo", "bits_per_dim_elbo")):
            row[name] = None if row[key] is None else bits_per_dim(row[key], D_PIXELS)
        rows.append(row)
        if log:
            log(f"{spec.name}: trained in {sum(seconds):.1f} s, evaluated in {evaluated:.1f} s ({len(seeds)} seeds)")
    meta = {"budget": dataclasses.asdict(budget), "quick": budget != FULL, "train": TRAIN, "seeds": seeds,
            "eval_seed": EVAL_SEED, "n_train": len(X), "n_val": len(X_val), "n_test": len(X_test), "fd_floor": floor,
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "date": datetime.date.today().isoformat(), "total_seconds": time.perf_counter() - started}
    return {"meta": meta, "rows": rows}


def _nats(value, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _spread(row: dict, key: str, fmt: str = ".1f") -> str:
    """``min–max`` of a number over the seeds, or n/a."""
    values = row.get(key + "_seeds")
    if not values:
        return "n/a"
    return f"{min(values):{fmt}}–{max(values):{fmt}}"


def _count(counts) -> str:
    return f"{min(counts)}" if min(counts) == max(counts) else f"{min(counts)}–{max(counts)}"


def _active(row: dict) -> str:
    if row["active_units"] is None:
        return "n/a"
    cell = f"{_count(row['active_units_seeds'])} (weakest {min(row['notes']['weakest_seeds']):.2f})"
    if row["kind"] == "hierarchical":
        cell = (f"z1: {cell}; z2: {_count(row['notes']['active_units_z2_per_seed'])} of "
                f"{len(row['notes']['activity_z2'])} (weakest {min(row['notes']['weakest_z2_seeds']):.2f})")
    return cell


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


BOUND_LABELS = {"vae": "IWAE-{k}", "cvae": "log Σ_y p(y) IWAE-{k_label}(x\\|y)", "vq": "neighbour sum",
                "learned-prior": "IWAE-{k}, learned log p(z) in the weights", "hierarchical": "IWAE-{k} over (z1, z2)",
                "diffusion": "the ELBO itself (T + 1 terms; no IWAE)"}


def to_markdown(results: dict) -> str:
    """The table of ``run``'s results as Markdown: a header, one row per model, and the notes that define them."""
    meta, rows = results["meta"], results["rows"]
    b = meta["budget"]
    k, k_label, seeds = b["k"], b["k"] // NUM_CLASSES, meta["seeds"]
    by_kind = {row["kind"]: row for row in reversed(rows)}  # the first row of each kind, for the notes
    lines = [
        "# Every course model on the same data" + (" (quick configuration: not the course's numbers)"
                                                   if meta["quick"] else ""),
        "",
        "Regenerate with `python -m tools.results` (`--quick` for a smoke test; `--only KEY ...` for some rows, "
        "merged into the existing table); the same numbers are in [results.json](results.json).",
        "",
        "**Read the nats with this caveat.** The pixels of the grey rows are grey values in [0, 1], scored with a "
        "Bernoulli likelihood: that is a cross-entropy, not a normalised density of grey images, so these nats and "
        "bits/dim are not comparable with published binarized-MNIST or 8-bit results. They compare the grey rows of "
        "this table with each other.",
        "",
        '**The binarized rows** ("binarized" in their name) train on dynamically binarized images (a fresh '
        "Bernoulli draw of every batch) and are scored on one fixed binarization of the test images: "
        "log-probabilities of binary images, the units of published binarized-MNIST results (Burda et al. 2016: "
        "86.76 nats for a VAE, 84.78 for an IWAE with k = 50, on all 60000 training images, 3280 epochs, "
        "IWAE-5000 on the full test set). They are compared with each other, and their paired difference is from "
        "the binarized VAE, never from a grey row: grey and binary images are different data.",
        "",
        f"**This machine**: {meta['cores']} cores, {_plural(meta['torch_threads'], 'torch thread')}, "
        f"torch {meta['torch']}, Python {meta['python']} ({meta['machine']}); "
        f"whole run {meta['total_seconds']:.0f} s on {meta['date']}"
        + "".join(f"; rows {', '.join(u['rows'])} regenerated in {u['seconds']:.0f} s on {u['date']}"
                  for u in meta.get("updates", [])) + ".",
        "",
        f"**Same for every model**: the first {meta['n_train']} MNIST training images (the \"train\" split), "
        f"{_plural(b['num_epochs'], 'epoch')} of Adam, batch {meta['train']['batch_size']}, "
        f"learning rate {meta['train']['lr']:g}; each model trained {_plural(len(seeds), 'time')}, from "
        f"`seed_everything(s)` for s in {', '.join(map(str, seeds))}. Every number is on all {meta['n_test']} test "
        f"images (the \"test\" split), averaged over the {_plural(len(seeds), 'seed')}; the only choice made from "
        f"data, the VQ-VAE prior's stopping step, uses the {meta['n_val']} \"val\" images.",
        "",
        "| model | what it is | parameters | training s per seed | test −ELBO = D + R (nats) | −log p(x) ≤ "
        "(nats ± s.e.) | bound used | bits/dim | −log p(x) minus the reference's: the VAE's, or the binarized "
        "VAE's (nats ± s.e., paired) | "
        "seeds: min–max of −log p(x) | "
        f"bound − ELBO (nats) | Fréchet distance (floor {meta['fd_floor']:.1f}) | active units (of {LATENT_DIM}) |",
        "|---|---|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        elbo_cell = ("n/a (D = " + _nats(row["distortion"]) + ")" if row["neg_elbo"] is None else
                     f"{row['neg_elbo']:.1f} = {row['distortion']:.1f} + {row['rate']:.1f}")
        if row["kind"] == "cvae":
            elbo_cell += " (of −log p(x\\|y))"
        if row["kind"] == "vq":
            elbo_cell += " (point mass)"
        if row["kind"] == "learned-prior":
            elbo_cell += f" (R by Monte Carlo, ± {row['notes']['rate_mc_se']:.2f})"
        if row["kind"] == "hierarchical":
            elbo_cell += f" (R = {row['notes']['rate_z1']:.1f} for z1 + {row['notes']['rate_z2']:.1f} for z2)"
        if row["kind"] == "diffusion":
            elbo_cell += f" (R: {row['notes']['num_steps'] - 1} step KLs + prior KL)"
        log_px = "n/a" if row["neg_log_px"] is None else f"{row['neg_log_px']:.1f} ± {row['neg_log_px_se']:.1f}"
        label = BOUND_LABELS.get(row["kind"], "n/a").format(k=k, k_label=k_label)
        if row["diff_vs_vae"] is None:
            diff = "n/a"
        elif row["name"] == row.get("reference", "VAE"):
            diff = "0 (reference)"
        else:
            diff = f"{row['diff_vs_vae']:+.1f} ± {row['diff_vs_vae_se']:.1f}"
            if row.get("reference", "VAE") != "VAE":
                diff += f" (vs {row['reference']})"
        gain = "0 (the bound is the ELBO)" if row["kind"] == "diffusion" else _nats(row["iwae_gain"])
        fd = "n/a" if row["fd"] is None else f"{row['fd']:.1f} ({_spread(row, 'fd')})"
        lines.append(f"| {row['name']} | {row['about']} | {row['parameters']:,} | {row['train_seconds']:.1f} | "
                     f"{elbo_cell} | {log_px} | {label if row['neg_log_px'] is not None else 'n/a'} | "
                     f"{_nats(row['bits_per_dim'], '.3f')} | {diff} | {_spread(row, 'neg_log_px')} | "
                     f"{gain} | {fd} | {_active(row)} |")
    notes = [
        f"**test −ELBO** on all {meta['n_test']} test images, split into distortion D = −E_q log p(x\\|z) "
        f"({b['elbo_samples']} draws of z per image) and rate R = KL(q(z\\|x) ‖ p(z)) in closed form (for the "
        "learned priors, the hierarchy and diffusion see their notes). Lower is better.",
        f"**−log p(x) ≤**: each model's tightest bound on log p(x), negated: for the Gaussian VAEs the "
        f"importance-weighted bound IWAE-{k} ({k} samples per image; a lower bound on log p(x) in expectation that "
        "tightens as k grows; for the learned-prior and hierarchical VAEs with their own priors' densities); for the "
        "CVAE, the VQ-VAE and the diffusion model see their notes. **± s.e.** is the standard error across "
        f"the {meta['n_test']} test images of the seed-averaged per-image values; **bits/dim** is that number / "
        "(784 ln 2). Lower is better.",
        "**minus the reference's**: the per-image difference of −log p(x) from the reference row on the same test "
        "images (the VAE row; for a binarized row the binarized VAE, on the same fixed binarized test images), "
        "averaged over images and seeds, with its standard error across images (paired, so the images' own spread "
        "cancels). Positive: a worse bound than the reference's. **seeds: min–max** shows the spread of the per-seed "
        "means: training noise, which the standard error across images does not include.",
        "**bound − ELBO**: how much the −log p(x) column's bound gains over the ELBO on the same images (the "
        "ELBO's shortfall, up to Monte Carlo noise).",
        f"**Fréchet distance**: between Gaussians fitted to {b['n_samples']} samples of the model (pixel "
        "probabilities decoded from its prior) and to the test images, in the top 20 principal components of the "
        f"training images (`vae_lesson.analysis.diagnostics.frechet_distance`); mean over seeds (min–max). The floor, "
        f"{meta['fd_floor']:.2f}, is {b['n_samples']} real training images against the test images. Lower is closer "
        "to the test digits. It measures samples, the −log p(x) column measures probability given to real digits: "
        "the two need not agree.",
        "**AE**: an autoencoder has no prior and no q, hence no bound on log p(x): its D is the reconstruction "
        "−log p(x\\|z = f(x)), and it cannot generate.",
    ]
    if "cvae" in by_kind:
        cvae = by_kind["cvae"]
        notes.append(f"**CVAE**: its −log p(x) column is a bound on the **marginal** log p(x) = log Σ_y p(y) p(x\\|y) "
                     f"with p(y) = 1/10 (the training labels are balanced): log Σ_y p(y) p̂(x\\|y), where p̂(x\\|y) is "
                     f"the importance-sampling estimate with {k_label} samples for each label (the log of an "
                     "unbiased estimate of p(x): a lower bound in expectation). Its ELBO column, D, R and bound − "
                     "ELBO are **conditional**, on log p(x\\|y) with the true label; the conditional −IWAE-"
                     f"{k_label} with the true label is {cvae['notes']['neg_log_px_given_y']:.1f} nats "
                     f"({bits_per_dim(cvae['notes']['neg_log_px_given_y'], D_PIXELS):.3f} bits/dim), not comparable "
                     "with the other rows (log p(x\\|y) can exceed log p(x) by up to log 10 = "
                     f"{math.log(10):.2f} nats). Active units: Var of μ(x, y) over the test set.")
    if "vq" in by_kind:
        vq = by_kind["vq"]
        notes.append("**VQ-VAE**: q(z\\|x) is a point mass on the nearest codes k(x), so every importance weight is "
                     "the same and IWAE-k equals the point-mass ELBO log p(x\\|k(x)) + log π(k(x)) (the −ELBO column; "
                     "R = −log π(k(x))). Its −log p(x) column is the **neighbour sum**, log Σ π(k) p(x\\|k) over k(x) "
                     "and every code sequence that differs from it in one position (1 + 8·31 = 249 terms of the "
                     "mixture p(x) = Σ_k π(k) p(x\\|k)): an exact lower bound, no sampling "
                     "(`vae_lesson.variants.vq_vae.neighbour_bound`); bound − ELBO is its gain over the point mass. "
                     "π is an "
                     f"autoregressive prior fitted after training (at most {b['prior_steps']} Adam steps on the "
                     "training codes, stopped at the step with the best validation log-likelihood: steps "
                     f"{', '.join(map(str, vq['notes']['prior_steps_chosen']))}; its "
                     f"{vq['notes']['prior_parameters']:,} weights are counted in the parameters). With the uniform "
                     "prior of training (R = 8 log 32 = 27.7 nats) the point-mass −ELBO is "
                     f"{vq['notes']['neg_elbo_uniform_prior']:.1f} nats. Active units do not apply to discrete codes; "
                     f"the test codes' perplexity is {vq['notes']['perplexity']:.1f} of 32.")
    if "learned-prior" in by_kind:
        notes.append("**VampPrior and MoG-prior VAEs** (`vae_lesson.variants.learned_priors`, notebook 15): the VAE's "
                     "encoder and decoder with a learned mixture prior p_λ(z), trained on the ELBO. KL(q(z\\|x) ‖ "
                     "p_λ(z)) has no closed form, so their **R is a Monte Carlo estimate**, the mean of log q(z\\|x) "
                     f"− log p_λ(z) over the same {b['elbo_samples']} draws of z as D (unbiased); ± is the Monte Carlo "
                     "standard error of one seed's mean rate over the test images (`kl_monte_carlo` with as many "
                     f"fresh draws; mean over seeds). Their −log p(x) column is IWAE-{k} "
                     "(`learned_prior_iwae`) with log p_λ(z) in the weights. The VampPrior's pseudo-inputs start at "
                     "random training images (`init_pseudo_inputs`, from the training seed). Parameters of the prior, "
                     f"counted in the row: the VampPrior's pseudo-inputs, {N_COMPONENTS}·784; the MoG prior's means, "
                     f"log-variances and weights, {N_COMPONENTS}·(2·{LATENT_DIM} + 1). Active units: Var of the "
                     "encoder's μ(x), as for the VAE.")
    if "hierarchical" in by_kind:
        notes.append("**Hierarchical VAE** (`vae_lesson.variants.hierarchical`, notebook 15): p(z2) = N(0, I), "
                     "p(z1\\|z2), p(x\\|z1), inferred top-down by q(z2\\|x) q(z1\\|x, z2). Its R is KL(q(z2\\|x) ‖ "
                     "N(0, I)) in closed form plus KL(q(z1\\|x, z2) ‖ p(z1\\|z2)) in closed form at each drawn z2 "
                     f"({b['elbo_samples']} draws); the cell splits R by layer. Trained with the KL weight ramped "
                     "linearly from 0 to 1 over all epochs (KL warm-up, the remedy notebook 15 uses against the top "
                     f"layer's collapse) and scored on the plain ELBO. −log p(x): IWAE-{k} over both layers "
                     "(`hierarchical_iwae`). Active units per layer (`active_units_per_layer`): for z1 the variance "
                     "over the test images of E_q[z1] (the mean of μ1(x, z2) over 10 draws of z2), for z2 of μ2(x).")
    if "diffusion" in by_kind:
        diffusion = by_kind["diffusion"]
        steps = diffusion["notes"]["num_steps"]
        notes.append(f"**Diffusion, T = {steps}** (`vae_lesson.variants.diffusion`, notebook 16): a hierarchical VAE "
                     f"with {steps} latent layers z_1 … z_{steps} of 784 dimensions whose encoder q(z_t\\|x) is fixed "
                     "(no parameters, no representation learned), trained on the ELBO with one sampled step per "
                     f"image. Its −ELBO is the full bound, all T + 1 = {steps + 1} terms (`diffusion_bound`): D = "
                     f"−log p(x\\|z_1), R = the {steps - 1} denoising KLs (closed form given a drawn z_t) + "
                     "KL(q(z_T\\|x) ‖ N(0, I)) (exact), each expectation by one draw of z_t per image, averaged "
                     f"over {b['elbo_samples']} evaluations. There is no IWAE for it here, so the −log p(x) column is "
                     "that ELBO and bound − ELBO is 0 by construction: the comparison with the VAE's IWAE-"
                     f"{k} row is between bounds of different tightness (compare −ELBOs too). Active units do not "
                     "apply (no bottleneck: every z_t has 784 dimensions).")
    notes += [
        f"**active units**: dimensions j with Var_x(μ_j(x)) > {ACTIVE_THRESHOLD} over the test images (Burda et "
        "al. 2016), min–max over seeds; *weakest* is the smallest Var_x(μ_j(x)) of any seed (the prior's variance "
        "is 1). After a short training an unused unit may still sit a little above the threshold, so read the count "
        "with it. The hierarchical VAE's cell gives both layers (its note says how).",
        "**training s per seed**: wall-clock seconds of one training (and of the VQ-VAE's prior) on this machine, "
        "while other processes may run: compare orders of magnitude, not decimals. IWAE k = 5 makes 5 decoder "
        "passes per image.",
        "**Exceptions to the shared recipe**: the β-VAEs weight the KL by β; IWAE trains on its k = 5 bound; the "
        "CVAE scales its one-hot label by 10 (the package default); the VQ-VAE trains on its own loss (no bound) "
        "and gets a prior afterwards; the Conv VAE changes the networks, not the objective; the binarized rows train "
        "on a fresh binarization of every batch and are scored on the fixed binarized test images (their Fréchet "
        "distance still compares samples with the grey test images); the learned-prior VAEs learn p(z) with the "
        "encoder and decoder; the hierarchical VAE adds a second latent layer and KL warm-up over all epochs; the "
        "diffusion model replaces the encoder by a fixed noising chain and trains on one sampled step per image.",
    ]
    lines += ["", "Notes:", ""] + [f"{i}. {note}" for i, note in enumerate(notes, start=1)]
    return "\n".join(lines) + "\n"


def write(results: dict, out) -> tuple[pathlib.Path, pathlib.Path]:
    """Write ``results.json`` and ``README.md`` (the Markdown table) into the folder ``out``; return both paths."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "results.json", out / "README.md"
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    md_path.write_text(to_markdown(results))
    return json_path, md_path


def select(keys, models=MODELS) -> list[Spec]:
    """The specs named by ``keys`` (their ``cli_key``), with the reference rows their paired differences need, in the
    order of ``models``."""
    by_key = {spec.cli_key: spec for spec in models}
    unknown = [key for key in keys if key not in by_key]
    if unknown or not keys:
        _checks.fail("--only", "row keys among " + ", ".join(by_key), ", ".join(unknown) or "none")
    names = {by_key[key].name for key in keys}
    names |= {by_key[key].reference for key in keys if any(s.name == by_key[key].reference for s in models)}
    return [spec for spec in models if spec.name in names]


def merge(old: dict, new: dict, models=MODELS) -> dict:
    """``old`` results with the rows of ``new`` replacing those of the same name (rows in the order of ``models``;
    rows ``models`` no longer has are kept at the end). Both must come from the same budget and seeds."""
    for key in ("budget", "seeds", "n_train", "n_test"):
        if old["meta"].get(key) != new["meta"].get(key):
            _checks.fail("results.json", f"results of the same configuration to merge into ({key} = "
                         f"{new['meta'].get(key)}); rerun the whole table", f"{key} = {old['meta'].get(key)}")
    rows = {row["name"]: row for row in old["rows"]}
    rows.update({row["name"]: row for row in new["rows"]})
    order = [spec.name for spec in models if spec.name in rows] + [n for n in rows if n not in {s.name for s in models}]
    meta = dict(old["meta"])
    meta["updates"] = list(old["meta"].get("updates", [])) + [
        {"rows": [row["name"] for row in new["rows"]], "date": new["meta"]["date"],
         "seconds": new["meta"]["total_seconds"]}]
    return {"meta": meta, "rows": [rows[name] for name in order]}


def main(argv=None) -> int:
    """``python -m tools.results [--quick] [--only KEY ...] [--out results/]``: run, write, print the Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m tools.results", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (seconds), for smoke tests")
    parser.add_argument("--out", default="results", help="folder for results.json and README.md (default: results)")
    parser.add_argument("--only", nargs="+", metavar="KEY", choices=[spec.cli_key for spec in MODELS],
                        help="compute only these rows (and the reference rows of their paired differences) and merge "
                             "them into the results.json of --out; keys: " + ", ".join(s.cli_key for s in MODELS))
    args = parser.parse_args(argv)
    budget = QUICK if args.quick else FULL
    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    if args.only:
        existing = pathlib.Path(args.out) / "results.json"
        if not existing.is_file():
            print(f"python -m tools.results: --only merges into {existing}, which does not exist; run the whole "
                  "table first", file=sys.stderr)
            return 2
        old = json.loads(existing.read_text())
        models = select(args.only)
        log("rows: " + ", ".join(spec.name for spec in models))
        try:
            results = merge(old, run(budget, models=models, log=log))
        except ValueError as err:
            print(f"python -m tools.results: {err}", file=sys.stderr)
            return 2
    else:
        results = run(budget, log=log)
    write(results, args.out)
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
