r"""One table that compares every model of the course on the same data: ``python -m vae_lesson.results``.

Every model of :data:`MODELS` starts from ``seed_everything(SEED)`` (so no number depends on the order of the
table), trains on the same MNIST training images with the same recipe (:data:`TRAIN`, :data:`FULL`: 20 epochs of
Adam, batches of 128, learning rate $10^{-3}$) and is evaluated on the same test images, in nats per image:

* test $-\text{ELBO} = D + R$ on all test images: distortion $D = -\mathbb E_{q}\log p_\theta(x\mid z)$
  (``elbo_samples`` draws of $z$ per image) plus rate $R = \mathrm{KL}(q_\phi(z\mid x)\,\|\,p(z))$ (closed form);
* $-\log p_\theta(x) \approx -\mathcal L_k(x)$, the IWAE bound with $k = 5000$ (:func:`vae_lesson.iwae_bound`), on the
  first ``n_iwae`` test images only ($k$ decoder passes per image), next to the ELBO of the same images;
  bits per dimension $= -\log p_\theta(x) / (784 \ln 2)$;
* parameters, training seconds (wall clock, this machine) and active units (:func:`vae_lesson.active_units`).

For three models the numbers change meaning, and the table's notes say how: the autoencoder has no bound at all
(only its distortion); the CVAE bounds $\log p_\theta(x\mid y)$; the VQ-VAE's $q$ is a point mass, so its IWAE-$k$
equals its ELBO, $\log p_\theta(x\mid z_q) + \log\pi(k(x))$ with a prior $\pi$ fitted to the training codes
(:func:`vae_lesson.vq_vae.vq_bound`). :data:`QUICK` is a tiny configuration for the tests (``--quick``).
Not here: any new model or objective; everything is imported from the modules that teach it.
"""

from __future__ import annotations

import argparse
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

from . import _checks
from .bounds import iwae_bound
from .collapse import active_units
from .conv_vae import ConvVAE
from .cvae import ConditionalVAE, evaluate_conditional, fit_conditional
from .data import load_mnist
from .iwae_training import iwae_objective
from .models import VAE, Autoencoder
from .seed import seed_everything
from .training import evaluate, fit
from .units import bits_per_dim
from .vq_vae import VQVAE, AutoregressivePrior, perplexity, vq_bound, vq_objective

D_PIXELS, LATENT_DIM, HIDDEN_DIMS = 784, 20, (400,)  # the 784-400-20 MLP of notebook 06
TRAIN = dict(batch_size=128, lr=1e-3)  # shared by every model; the number of epochs is in the Budget
SEED, EVAL_SEED = 0, 1  # seed_everything(SEED) before each model; a fresh generator(EVAL_SEED) for its evaluation
ACTIVE_THRESHOLD = 0.01  # Burda et al.: unit j is active when Var_x(mu_j(x)) > 0.01
PRIOR = dict(batch_size=256, lr=1e-2)  # Adam on -log pi(k) of the VQ-VAE's training codes (notebook 12)
KINDS = ("ae", "vae", "cvae", "vq")


@dataclass(frozen=True)
class Spec:
    """One row of the table: its name, the "what it is" cell, a constructor, how to train and evaluate it."""

    name: str
    about: str
    build: Callable[[], nn.Module]
    kind: str = "vae"  # "ae": no bound; "vae": Gaussian q(z|x); "cvae": q and p see the label; "vq": codebook
    fit_kwargs: dict = field(default_factory=dict)  # extra arguments of fit: beta, objective


def _mlp_vae() -> VAE:
    return VAE(D_PIXELS, LATENT_DIM, HIDDEN_DIMS)


MODELS = (
    Spec("AE", "784-400-20 MLP autoencoder, Bernoulli reconstruction loss; no prior, no bound",
         lambda: Autoencoder(D_PIXELS, LATENT_DIM, HIDDEN_DIMS), "ae"),
    Spec("VAE", "784-400-20 MLP, Gaussian q(z\\|x), prior N(0, I), Bernoulli decoder; trained on the ELBO",
         _mlp_vae),
    Spec("β-VAE, β = 0.5", "the VAE trained on reconstruction − 0.5·KL (more rate)", _mlp_vae,
         fit_kwargs={"beta": 0.5}),
    Spec("β-VAE, β = 4", "the VAE trained on reconstruction − 4·KL (less rate)", _mlp_vae, fit_kwargs={"beta": 4.0}),
    Spec("CVAE", "the VAE with the digit label (one-hot × 10) fed to encoder and decoder",
         lambda: ConditionalVAE(D_PIXELS, LATENT_DIM, 10, HIDDEN_DIMS), "cvae"),
    Spec("IWAE, k = 5", "the VAE trained on the 5-sample importance-weighted bound (5 decoder passes per image)",
         _mlp_vae, fit_kwargs={"objective": iwae_objective(5)}),
    Spec("VQ-VAE", "784-400-64 MLP, 8 positions × 32 codes of size 8, commitment 0.25; autoregressive prior "
         "fitted to the training codes afterwards", lambda: VQVAE(D_PIXELS, 8, 8, 32, HIDDEN_DIMS), "vq",
         {"objective": vq_objective(0.25)}),
    Spec("Conv VAE", "conv encoder 1→16→32 channels (4×4, stride 2), mirrored transposed-conv decoder, 20-d z; "
         "the ELBO", lambda: ConvVAE(28, LATENT_DIM, (16, 32))),
)


@dataclass(frozen=True)
class Budget:
    """How much to train and evaluate: the first ``n_train`` training and ``n_test`` test images, IWAE with ``k``
    samples on the first ``n_iwae`` of them, ``prior_steps`` Adam steps for the VQ-VAE's prior."""

    num_epochs: int = 20
    n_train: int = 4000
    n_test: int = 1000
    n_iwae: int = 200
    k: int = 5000
    elbo_samples: int = 10
    prior_steps: int = 300

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _checks.integer(f.name, getattr(self, f.name), minimum=1)
        if self.n_iwae > self.n_test:
            _checks.fail("n_iwae", f"at most n_test = {self.n_test}", self.n_iwae)


FULL = Budget()
QUICK = Budget(num_epochs=1, n_train=256, n_test=100, n_iwae=20, k=5, elbo_samples=2, prior_steps=20)


def fit_code_prior(model: VQVAE, X: torch.Tensor, steps: int, generator=None) -> AutoregressivePrior:
    """An :class:`AutoregressivePrior` fitted by Adam (:data:`PRIOR`) to the codes of ``X [n, D]``, ``steps`` steps."""
    codes = model.codes(X)  # [n, P]
    prior = AutoregressivePrior(model.num_positions, model.num_codes)
    optimizer = torch.optim.Adam(prior.parameters(), lr=PRIOR["lr"])
    for _ in range(steps):
        batch = codes[torch.randint(0, len(codes), (PRIOR["batch_size"],), generator=generator)]  # [256, P]
        loss = -prior.log_prob(batch).mean()  # nats per code sequence
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return prior.eval()


def train(spec: Spec, X: torch.Tensor, y: torch.Tensor, budget: Budget):
    """Train ``spec``'s model from ``seed_everything(SEED)``: ``(model, prior or None, seconds)``."""
    _checks.choice("spec.kind", spec.kind, KINDS)
    generator = seed_everything(SEED)
    model = spec.build()
    kwargs = dict(num_epochs=budget.num_epochs, generator=generator, progress=False, **TRAIN, **spec.fit_kwargs)
    started = time.perf_counter()
    if spec.kind == "cvae":
        fit_conditional(model, X, y, **kwargs)
    else:
        fit(model, X, **kwargs)
    prior = fit_code_prior(model, X, budget.prior_steps, generator) if spec.kind == "vq" else None
    return model, prior, time.perf_counter() - started


def _log_px_given_label(model: ConditionalVAE, X, y, k: int, generator) -> torch.Tensor:
    """IWAE-k of log p(x | y) for each row, through the plain VAE of each label: ``[n]`` nats."""
    out = X.new_zeros(len(X))  # [n]
    for c in y.unique().tolist():
        rows = y == c
        out[rows] = iwae_bound(model.with_label(c).eval(), X[rows], k, generator=generator)
    return out


def _log_px(model: ConditionalVAE, X, k: int, generator) -> torch.Tensor:
    r"""log p(x) with p(y) uniform: $\log\frac1K\sum_c \hat p(x\mid c)$, k/K importance samples per label, ``[n]``."""
    K = model.num_classes
    per_label = torch.stack([iwae_bound(model.with_label(c).eval(), X, max(1, k // K), generator=generator)
                             for c in range(K)])  # [K, n]
    return torch.logsumexp(per_label, 0) - math.log(K)


@torch.no_grad()
def evaluate_model(spec: Spec, model, prior, X: torch.Tensor, y: torch.Tensor, budget: Budget) -> dict:
    """The row's numbers (nats per image, ``None`` where not defined) on test images ``X [n, D]``, labels ``y``."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    X_sub, y_sub, S, k = X[:budget.n_iwae], y[:budget.n_iwae], budget.elbo_samples, budget.k
    row = dict(neg_elbo=None, rate=None, neg_elbo_subset=None, neg_log_px=None, active_units=None, notes={})
    if spec.kind == "ae":
        row["distortion"] = -evaluate(model, X)["reconstruction"]
    elif spec.kind in ("vae", "cvae"):
        if spec.kind == "vae":
            full = evaluate(model, X, n_samples=S, generator=generator)
            row["neg_elbo_subset"] = -evaluate(model, X_sub, n_samples=S, generator=generator)["elbo"]
            row["neg_log_px"] = -iwae_bound(model, X_sub, k, generator=generator).mean().item()
            mu_var = active_units(model, X, ACTIVE_THRESHOLD).activity  # [latent_dim]
        else:
            full = evaluate_conditional(model, X, y, n_samples=S, generator=generator)
            row["neg_elbo_subset"] = -evaluate_conditional(model, X_sub, y_sub, S, generator)["elbo"]
            row["neg_log_px"] = -_log_px_given_label(model, X_sub, y_sub, k, generator).mean().item()
            row["notes"]["neg_log_px_marginal"] = -_log_px(model, X_sub, k, generator).mean().item()
            mu_var = model.encode(X, y)[0].var(0, unbiased=False)  # [latent_dim], Var_x mu_j(x, y)
        row.update(neg_elbo=-full["elbo"], distortion=-full["reconstruction"], rate=full["kl"],
                   active_units=int((mu_var > ACTIVE_THRESHOLD).sum()))
        row["notes"]["activity"] = mu_var.tolist()  # [latent_dim], Var_x mu_j(x): how far above the threshold
    else:
        terms = vq_bound(model, X, prior)  # [n] each, kl = -log pi(k(x))
        row.update(neg_elbo=-terms.elbo.mean().item(), distortion=-terms.reconstruction.mean().item(),
                   rate=terms.kl.mean().item())
        row["neg_elbo_subset"] = row["neg_log_px"] = -vq_bound(model, X_sub, prior).elbo.mean().item()
        row["notes"].update(neg_elbo_uniform_prior=-vq_bound(model, X).elbo.mean().item(),
                            perplexity=perplexity(model.codes(X), model.num_codes).item(),
                            prior_parameters=sum(p.numel() for p in prior.parameters()))
    for key, name in (("neg_log_px", "bits_per_dim"), ("neg_elbo", "bits_per_dim_elbo")):
        row[name] = None if row[key] is None else bits_per_dim(row[key], D_PIXELS)
    gain = None if row["neg_log_px"] is None else row["neg_elbo_subset"] - row["neg_log_px"]
    return {**row, "iwae_gain": gain}


def run(budget: Budget = FULL, models=MODELS, log: Callable[[str], None] | None = None) -> dict:
    """Train and evaluate each of ``models`` under ``budget``; return ``{"meta": ..., "rows": [...]}`` (JSON-able)."""
    if not isinstance(budget, Budget):
        _checks.fail("budget", "a vae_lesson.results.Budget", type(budget).__name__, TypeError)
    started = time.perf_counter()
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])  # its first use imports torch._dynamo (~2 s): not training time
    X, y = (t[:budget.n_train] for t in load_mnist("train"))  # [n_train, 784], [n_train]
    X_test, y_test = (t[:budget.n_test] for t in load_mnist("test"))  # [n_test, 784], [n_test]
    rows = []
    for spec in models:
        model, prior, seconds = train(spec, X, y, budget)
        evaluated = time.perf_counter()
        row = {"name": spec.name, "about": spec.about, "kind": spec.kind,
               "parameters": sum(p.numel() for p in model.parameters())
               + (sum(p.numel() for p in prior.parameters()) if prior is not None else 0),
               "train_seconds": seconds, **evaluate_model(spec, model, prior, X_test, y_test, budget)}
        row["eval_seconds"] = time.perf_counter() - evaluated
        rows.append(row)
        if log:
            log(f"{spec.name}: trained in {seconds:.1f} s, evaluated in {row['eval_seconds']:.1f} s")
    meta = {"budget": dataclasses.asdict(budget), "quick": budget != FULL, "train": TRAIN, "seed": SEED,
            "eval_seed": EVAL_SEED, "n_train": len(X), "n_test": len(X_test), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "date": datetime.date.today().isoformat(), "total_seconds": time.perf_counter() - started}
    return {"meta": meta, "rows": rows}


def _nats(value, fmt: str = ".1f") -> str:
    return "n/a" if value is None else format(value, fmt)


def _active(row: dict) -> str:
    if row["active_units"] is None:
        return "n/a"
    return f"{row['active_units']} (weakest {min(row['notes']['activity']):.2f})"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def to_markdown(results: dict) -> str:
    """The table of ``run``'s results as Markdown: a header, one row per model, and the notes that define them."""
    meta, rows = results["meta"], results["rows"]
    b = meta["budget"]
    by_kind = {row["kind"]: row for row in reversed(rows)}  # the first row of each kind, for the notes
    lines = [
        "# Every course model on the same data" + (" (quick configuration: not the course's numbers)"
                                                   if meta["quick"] else ""),
        "",
        "Regenerate with `python -m vae_lesson.results` (`--quick` for a smoke test); the same numbers are in "
        "[results.json](results.json).",
        "",
        f"**This machine**: {meta['cores']} cores, {_plural(meta['torch_threads'], 'torch thread')}, "
        f"torch {meta['torch']}, Python {meta['python']} ({meta['machine']}); "
        f"whole run {meta['total_seconds']:.0f} s on {meta['date']}.",
        "",
        f"**Same for every model**: the first {meta['n_train']} MNIST training images, "
        f"{_plural(b['num_epochs'], 'epoch')} of Adam, batch {meta['train']['batch_size']}, "
        f"learning rate {meta['train']['lr']:g}, `seed_everything({meta['seed']})` before each model; "
        f"tested on {meta['n_test']} test images.",
        "",
        f"| model | what it is | parameters | training s | test −ELBO = D + R (nats) | −log p(x) ≈ −IWAE-{b['k']} "
        f"(nats) | IWAE − ELBO (nats) | bits/dim | active units (of {LATENT_DIM}) |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        elbo = ("n/a (D = " + _nats(row["distortion"]) + ")" if row["neg_elbo"] is None else
                f"{row['neg_elbo']:.1f} = {row['distortion']:.1f} + {row['rate']:.1f}")
        log_px = _nats(row["neg_log_px"]) + {"cvae": " (−log p(x\\|y))", "vq": " (= its ELBO)"}.get(row["kind"], "")
        lines.append(f"| {row['name']} | {row['about']} | {row['parameters']:,} | {row['train_seconds']:.1f} | "
                     f"{elbo} | {log_px} | {_nats(row['iwae_gain'])} | {_nats(row['bits_per_dim'], '.3f')} | "
                     f"{_active(row)} |")
    notes = [
        f"**test −ELBO** on all {meta['n_test']} test images, split into distortion D = −E_q log p(x\\|z) "
        f"({b['elbo_samples']} draws of z per image) and rate R = KL(q(z\\|x) ‖ p(z)) in closed form. Lower is better.",
        f"**−log p(x) ≈ −IWAE-{b['k']}**: the importance-weighted bound with k = {b['k']} samples, in expectation "
        f"an upper bound on −log p(x) that tightens as k grows, on the **first {b['n_iwae']} test images only** "
        f"(it costs {b['k']} decoder passes per image); **IWAE − ELBO** is the gain over the ELBO on those same "
        "images (the ELBO's shortfall from log p(x), up to Monte Carlo noise); **bits/dim** is −log p(x) / (784 ln 2).",
        "**AE**: an autoencoder has no prior and no q, hence no bound on log p(x): its D is the reconstruction "
        "−log p(x\\|z = f(x)), and it cannot generate.",
    ]
    if "cvae" in by_kind:
        cvae = by_kind["cvae"]
        notes.append(f"**CVAE**: its bounds are on **log p(x\\|y)** with the true label y, which can exceed log p(x) "
                     f"by at most log 10 = {math.log(10):.2f} nats (when y is certain given x). Its −log p(x) with "
                     f"p(y) uniform, {_plural(max(1, b['k'] // 10), 'importance sample')} per label on the same "
                     "images, is "
                     f"{cvae['notes']['neg_log_px_marginal']:.1f} nats. Active units: Var of μ(x, y) over the test "
                     "set.")
    if "vq" in by_kind:
        vq = by_kind["vq"]
        notes.append("**VQ-VAE**: q(z\\|x) is a point mass on the nearest codes, so every importance weight is the "
                     "same and IWAE-k equals the ELBO for every k: log p(x\\|z_q) + log π(k(x)) with the "
                     f"autoregressive prior π fitted after training ({b['prior_steps']} Adam steps on the training "
                     f"codes; its {vq['notes']['prior_parameters']:,} weights are counted in the parameters). R is "
                     "−log π(k(x)). With the uniform prior of training (R = 8 log 32 = 27.7 nats) the −ELBO is "
                     f"{vq['notes']['neg_elbo_uniform_prior']:.1f} nats. Active units do not apply to discrete codes; "
                     f"the test codes' perplexity is {vq['notes']['perplexity']:.1f} of 32.")
    notes += [
        f"**active units**: dimensions j with Var_x(μ_j(x)) > {ACTIVE_THRESHOLD} over the test images (Burda et "
        "al. 2016); *weakest* is the smallest Var_x(μ_j(x)) (the prior's variance is 1). After a short training an "
        "unused unit may still sit a little above the threshold, so read the count with it.",
        "**training s**: wall-clock seconds of training (and of the VQ-VAE's prior) on this machine, while other "
        "processes may run: compare orders of magnitude, not decimals. IWAE k = 5 makes 5 decoder passes per image.",
        "**Exceptions to the shared recipe**: the β-VAEs weight the KL by β; IWAE trains on its k = 5 bound; the "
        "CVAE scales its one-hot label by 10 (the package default); the VQ-VAE trains on its own loss (no bound) "
        "and gets a prior afterwards; the Conv VAE changes the networks, not the objective.",
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


def main(argv=None) -> int:
    """``python -m vae_lesson.results [--quick] [--out results/]``: run, write, print the Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m vae_lesson.results", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny configuration (seconds), for smoke tests")
    parser.add_argument("--out", default="results", help="folder for results.json and README.md (default: results)")
    args = parser.parse_args(argv)
    results = run(QUICK if args.quick else FULL, log=lambda line: print(line, file=sys.stderr, flush=True))
    write(results, args.out)
    print(to_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
