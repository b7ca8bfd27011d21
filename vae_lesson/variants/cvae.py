r"""A conditional VAE (CVAE; Sohn, Lee & Yan 2015): encoder and decoder both see the label $y$.

For an image $x$ with label $y \in \{0, \dots, K-1\}$, written as a one-hot vector $e_y$ (times a constant $s$,
``label_scale``) and **concatenated** to the input of each network:

$$p(z) = \mathcal N(0, I), \quad p_\theta(x\mid z, y) = \prod_d \operatorname{Bernoulli}\big(x_d;
\operatorname{sigmoid}(g_\theta([z, s e_y]))_d\big), \quad q_\phi(z\mid x, y) = \mathcal N\big(\mu_\phi([x, s e_y]),
\operatorname{diag} e^{\text{logvar}_\phi([x, s e_y])}\big),$$

and the conditional ELBO is a lower bound on $\log p_\theta(x\mid y)$, not on $\log p_\theta(x)$:

$$\log p_\theta(x\mid y) \ge \mathcal L(x, y) = \mathbb E_{q_\phi(z\mid x,y)}[\log p_\theta(x\mid z, y)]
 - \mathrm{KL}\big(q_\phi(z\mid x, y)\,\|\,p(z)\big).$$

With the label fixed to $c$, $s e_c$ times a first layer's weights is a constant vector: a bias. So the CVAE at
label $c$ *is* a plain :class:`~vae_lesson.VAE` (:meth:`ConditionalVAE.with_label`), and every VAE tool of the
package (``elbo``, ``iwae_bound``, ``sample``) applies to $p_\theta(x\mid y=c)$; the tests use it as the reference.

Training reuses :func:`vae_lesson.fit` unchanged: :func:`fit_conditional` hands it one tensor whose rows are
$[x, e_y]$, so that fit's shuffling keeps every image with its label, and an objective that splits each row again.
Also here: :func:`elbo_per_label`, :func:`log_weights_per_label` (importance weights for a bound on the marginal
$\log p_\theta(x)$), :func:`style_transfer`, and a widget (:func:`conditional_sliders`: a digit
dropdown and latent sliders) with its pure figure :func:`render_conditional_decode`.
Not here: semi-supervised training with missing labels (Kingma et al. 2014, model M2).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from matplotlib.patches import Rectangle
from torch import nn

from vae_lesson import _checks
from vae_lesson.core.bounds import ELBOTerms, check_log_weights, elbo_from_q, log_importance_weights
from vae_lesson.core.checkpoint import register_model
from vae_lesson.core.models import VAE, mlp
from vae_lesson.core.training import History, evaluate, fit
from vae_lesson.views.plotting import errors_shown_in, figure_png, image_side, tile


@register_model
class ConditionalVAE(nn.Module):
    """A VAE whose encoder reads ``[x, s * one_hot(y)]`` and whose decoder reads ``[z, s * one_hot(y)]``.

    ``input_dim``, ``latent_dim``, ``hidden_dims`` as in :class:`~vae_lesson.VAE`; ``num_classes`` labels. Labels
    ``y`` are int64 ``[batch]`` in ``[0, num_classes)``, or one int for every row. ``label_scale`` $s$ changes no
    model's function (the first layers' weights absorb it), only training: PyTorch initializes and Adam moves each
    weight by about the same amount whatever its input, so the label's pathway starts $s$ times stronger and moves
    $s$ times faster. With $s = 1$ the decoder learns to read the digit from $z$ first and then ignores $y$
    (notebook 10 measures it). ``config`` holds the constructor arguments for ``load_checkpoint``.
    """

    def __init__(self, input_dim: int, latent_dim: int, num_classes: int = 10, hidden_dims=(400,),
                 label_scale: float = 10.0):
        super().__init__()
        self.input_dim = _checks.integer("input_dim", input_dim, minimum=1)
        self.latent_dim = _checks.integer("latent_dim", latent_dim, minimum=1)
        self.num_classes = _checks.integer("num_classes", num_classes, minimum=1)
        self.hidden_dims = _checks.dims("hidden_dims", hidden_dims)
        self.label_scale = _checks.number("label_scale", label_scale, positive=True)
        self.config = {"input_dim": self.input_dim, "latent_dim": self.latent_dim, "num_classes": self.num_classes,
                       "hidden_dims": list(self.hidden_dims), "label_scale": self.label_scale}
        self.decoder = mlp((self.latent_dim + self.num_classes, *reversed(self.hidden_dims), self.input_dim))
        self.encoder = mlp((self.input_dim + self.num_classes, *self.hidden_dims, 2 * self.latent_dim))

    def one_hot(self, y, batch: int) -> torch.Tensor:
        """Labels ``y`` (``[batch]`` ints, or one int) -> one-hot rows ``[batch, num_classes]`` (float, unscaled)."""
        if isinstance(y, numbers.Integral) and not isinstance(y, bool):
            y = torch.full((batch,), int(y))
        if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.dtype == torch.bool:
            got = f"a {y.dtype} tensor" if isinstance(y, torch.Tensor) else type(y).__name__
            _checks.fail("y", "an int64 tensor of labels (or one int)", got, TypeError)
        if y.shape != (batch,):
            _checks.fail("y", f"shape [{batch}] (one label per row)", list(y.shape))
        if batch and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            _checks.fail("y", f"labels in [0, {self.num_classes - 1}]", f"[{int(y.min())}, {int(y.max())}]")
        return F.one_hot(y.long(), self.num_classes).float()  # [batch, K]

    def encode(self, x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [batch, input_dim]`` in [0, 1], labels ``y`` -> ``(mu, logvar)``, each ``[batch, latent_dim]``."""
        _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
        if x.shape[1] != self.input_dim:
            _checks.fail("x", f"shape [batch, {self.input_dim}] (input_dim)", list(x.shape))
        x = _checks.model_input("x", x, self)  # float64 data: cast once to the model's dtype
        labels = self.label_scale * self.one_hot(y, x.shape[0]).to(x.dtype)  # [batch, K]
        mu, logvar = self.encoder(torch.cat([x, labels], dim=-1)).chunk(2, dim=-1)  # [batch, latent_dim] each
        return mu, logvar

    def decode(self, z: torch.Tensor, y) -> torch.Tensor:
        """``z [batch, latent_dim]`` (or ``[k, batch, latent_dim]``), labels ``y`` -> logits ``[(k,) batch, D]``."""
        _checks.tensor("z", z, ndim=(2, 3))
        if z.shape[-1] != self.latent_dim:
            _checks.fail("z", f"shape [batch, {self.latent_dim}] (latent_dim)", list(z.shape))
        z = _checks.model_input("z", z, self)
        labels = self.label_scale * self.one_hot(y, z.shape[-2]).to(z.dtype)  # [batch, K]
        return self.decoder(torch.cat([z, labels.expand(*z.shape[:-1], -1)], dim=-1))  # [(k,) batch, D]

    def with_label(self, label: int) -> VAE:
        """The plain :class:`~vae_lesson.VAE` of $p_\\theta(x\\mid y = \\text{label})$: the same weights, each first
        layer's label column (times ``label_scale``) added to its bias. ``elbo(cvae.with_label(c), x)`` is L(x, c)."""
        label = _checks.integer("label", label, minimum=0)
        if label >= self.num_classes:
            _checks.fail("label", f"an int in [0, {self.num_classes - 1}]", label)
        with torch.random.fork_rng(devices=[]):  # the VAE's random initial weights are overwritten below
            vae = VAE(self.input_dim, self.latent_dim, self.hidden_dims)
        state = {f"{name}.{key}": value.detach().clone() for name in ("encoder", "decoder")
                 for key, value in getattr(self, name).state_dict().items()}
        for name, width in (("encoder", self.input_dim), ("decoder", self.latent_dim)):
            weight = state[f"{name}.0.weight"]  # [hidden, width + K]
            state[f"{name}.0.bias"] += self.label_scale * weight[:, width + label]  # W (s e_c) is a bias
            state[f"{name}.0.weight"] = weight[:, :width].contiguous()  # [hidden, width]
        vae.load_state_dict(state)
        return vae.train(self.training)

    def extra_repr(self) -> str:
        return (f"input_dim={self.input_dim}, latent_dim={self.latent_dim}, num_classes={self.num_classes}, "
                f"hidden_dims={self.hidden_dims}, label_scale={self.label_scale:g}")


def _check_cvae(model) -> ConditionalVAE:
    if not isinstance(model, ConditionalVAE):
        _checks.fail("model", "a vae_lesson.variants.cvae.ConditionalVAE", type(model).__name__, TypeError)
    return model


def conditional_elbo(model, x: torch.Tensor, y, n_samples: int = 1,
                     generator: torch.Generator | None = None) -> ELBOTerms:
    r"""$\mathcal L(x, y)$ per example: ``reconstruction`` $=\frac1S\sum_s \log p_\theta(x\mid z_s, y)$ with
    $z_s \sim q_\phi(z\mid x, y)$ reparameterized, ``kl`` $= \mathrm{KL}(q_\phi(z\mid x,y)\,\|\,\mathcal N(0, I))$.

    ``x [batch, input_dim]``, ``y`` labels ``[batch]`` (or one int). Returns :class:`~vae_lesson.ELBOTerms`,
    ``[batch]`` each, nats; a lower bound on $\log p_\theta(x\mid y)$. Differentiable. The formula is
    :func:`vae_lesson.core.bounds.elbo_from_q` with the decoder ``z -> decode(z, y)``.
    """
    _check_cvae(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    _checks.generator("generator", generator)
    mu, logvar = model.encode(x, y)  # [batch, latent_dim] each
    device = generator.device if generator is not None else mu.device
    eps = torch.randn((n_samples, *mu.shape), generator=generator, device=device,
                      dtype=mu.dtype).to(mu.device)  # [S, batch, latent_dim]
    return elbo_from_q(lambda z: model.decode(z, y), x, mu, logvar, eps=eps)


@torch.no_grad()
def elbo_per_label(model, x: torch.Tensor, n_samples: int = 1,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    r"""$\mathcal L(x, c)$ for every label $c$: ``[batch, num_classes]``, nats (no gradients).

    As $p_\theta(y\mid x) \propto p(y)\,p_\theta(x\mid y)$, a ``softmax`` over the last axis approximates the model's
    label posterior; $\log\frac1K\sum_c e^{\mathcal L(x, c)}$ is a lower bound on $\log p_\theta(x)$ for $p(y) = 1/K$.
    """
    _check_cvae(model)
    return torch.stack([conditional_elbo(model, x, c, n_samples, generator).elbo
                        for c in range(model.num_classes)], dim=-1)  # [batch, K]


@torch.no_grad()
def log_weights_per_label(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None,
                          max_rows: int = 65536) -> torch.Tensor:
    r"""Log importance weights for every label: ``[k, batch, num_classes]``, nats (no gradients).

    For label $c$ and $z_{c,i} \sim q_\phi(z\mid x, c)$, $i = 1..k$ (reparameterized, independent draws per label):
    $\log w_{c,i} = \log p_\theta(x\mid z_{c,i}, c) + \log p(z_{c,i}) - \log q_\phi(z_{c,i}\mid x, c)$. Then
    $\frac1k\sum_i w_{c,i}$ is an unbiased estimate of $p_\theta(x\mid c)$, so
    ``logsumexp(log_w, 0) - log k`` is the IWAE-$k$ bound $\mathcal L_k(x, c)$ on $\log p_\theta(x\mid c)$ (in
    expectation), ``log_w.mean(0)`` a $k$-sample estimate of the ELBO $\mathcal L(x, c)$ (KL by sampling), and
    $\log\frac1K\sum_c e^{\mathcal L_k(x, c)}$ the log of an unbiased estimate of $p_\theta(x)$ for $p(y) = 1/K$:
    a lower bound on $\log p_\theta(x)$ in expectation (Jensen). ``x``: ``[batch, input_dim]``; rows of ``x`` are
    processed in chunks of at most ``max_rows`` decoded rows ($k \times$ images) to bound memory.
    """
    _check_cvae(model)
    k = _checks.integer("k", k, minimum=1)
    max_rows = _checks.integer("max_rows", max_rows, minimum=1)
    _checks.generator("generator", generator)
    _checks.tensor("x", x, ndim=2, low=0.0, high=1.0)
    chunk = max(1, max_rows // k)
    parts = []
    for start in range(0, x.shape[0], chunk):
        xb = x[start:start + chunk]  # [b, D]
        per_label = []
        for c in range(model.num_classes):
            mu, logvar = model.encode(xb, c)  # [b, latent_dim] each
            with _checks.data_checked_upstream():  # x checked above; the weights are checked once below
                log_w = log_importance_weights(lambda z, c=c: model.decode(z, c), xb, mu, logvar, k, generator)
            per_label.append(check_log_weights(log_w, logvar))  # [k, b]
        parts.append(torch.stack(per_label, dim=-1))  # [k, b, K]
    return torch.cat(parts, dim=1) if parts else x.new_zeros(k, 0, model.num_classes)


class _PackedRows(nn.Module):
    """What ``fit`` trains: the CVAE seen as a model of rows ``[x, one_hot(y)]`` of width ``input_dim + K``."""

    def __init__(self, cvae: ConditionalVAE):
        super().__init__()
        self.cvae, self.input_dim = cvae, cvae.input_dim + cvae.num_classes


def _pack(model: ConditionalVAE, X, y, name: str) -> torch.Tensor:
    _checks.tensor(name, X, ndim=2)
    return torch.cat([X, model.one_hot(y, X.shape[0]).to(X.dtype)], dim=1)  # [n, D + K]


def _packed_objective(n_samples: int = 1):
    def objective(packed: _PackedRows, rows: torch.Tensor, generator=None) -> ELBOTerms:
        D = packed.cvae.input_dim
        return conditional_elbo(packed.cvae, rows[:, :D], rows[:, D:].argmax(1), n_samples, generator)
    return objective


def fit_conditional(model, X: torch.Tensor, y: torch.Tensor, *, X_val: torch.Tensor | None = None,
                    y_val: torch.Tensor | None = None, **fit_kwargs) -> History:
    """:func:`vae_lesson.fit` on the conditional ELBO: images ``X [n, D]`` with labels ``y [n]`` (validation:
    ``X_val`` with ``y_val``). ``fit_kwargs`` are fit's (``num_epochs``, ``batch_size``, ``lr``, ``beta``,
    ``generator``, ...). Returns fit's :class:`~vae_lesson.History`, nats per example; the model ends in eval mode."""
    _check_cvae(model)
    if (X_val is None) != (y_val is None):
        _checks.fail("y_val", "labels exactly when X_val is given", type(y_val).__name__, TypeError)
    rows_val = None if X_val is None else _pack(model, X_val, y_val, "X_val")
    return fit(_PackedRows(model), _pack(model, X, y, "X"), X_val=rows_val, objective=_packed_objective(),
               **fit_kwargs)


def evaluate_conditional(model, X: torch.Tensor, y: torch.Tensor, n_samples: int = 1,
                         generator: torch.Generator | None = None) -> dict[str, float]:
    """Means of the conditional ELBO's ``reconstruction``, ``kl``, ``elbo`` over ``(X, y)``, nats per example."""
    _check_cvae(model)
    n_samples = _checks.integer("n_samples", n_samples, minimum=1)
    return evaluate(_PackedRows(model), _pack(model, X, y, "X"), generator=generator,
                    objective=_packed_objective(n_samples))


@torch.no_grad()
def style_transfer(model, x: torch.Tensor, y, targets=None) -> torch.Tensor:
    """Encode ``x [n, D]`` with its labels ``y`` (posterior mean $\\mu$), decode that code with each label of
    ``targets`` (default: all). Returns pixel probabilities ``[n, len(targets), D]``."""
    _check_cvae(model)
    targets = range(model.num_classes) if targets is None else targets
    mu, _ = model.encode(x, y)  # [n, latent_dim]
    return torch.stack([torch.sigmoid(model.decode(mu, int(t))) for t in targets], dim=1)  # [n, T, D]


def render_conditional_decode(model, z: torch.Tensor, digit: int, title: str | None = None):
    """Figure: ``z [latent_dim]`` decoded with label ``digit`` (left, large: ``fig.axes[0]`` shows
    ``sigmoid(decode(z, digit))``) and with every label (right, the chosen one framed). Never displays."""
    _check_cvae(model)
    _checks.tensor("z", z, ndim=1)
    K, digit = model.num_classes, _checks.integer("digit", digit, minimum=0)
    if digit >= K:
        _checks.fail("digit", f"an int in [0, {K - 1}]", digit)
    with torch.no_grad():
        pixels = torch.sigmoid(model.decode(z.expand(K, -1), torch.arange(K)))  # [K, D]
    side, ncols = image_side(model.input_dim), min(K, 5)
    fig, (ax_one, ax_all) = plt.subplots(1, 2, figsize=(7.8, 3.0), gridspec_kw={"width_ratios": [1, 2.4]})
    ax_one.imshow(pixels[digit].reshape(side, side).numpy(), cmap="gray", vmin=0, vmax=1)
    ax_one.set_title(f"label y = {digit}")
    ax_all.imshow(tile(pixels, ncols), cmap="gray", vmin=0, vmax=1)
    row, col = divmod(digit, ncols)
    ax_all.add_patch(Rectangle((col * (side + 1) - 0.5, row * (side + 1) - 0.5), side, side,
                               fill=False, edgecolor="red", lw=2.5))  # over the chosen image's border pixels
    ax_all.set_title(f"the same z with every label 0–{K - 1} (y = {digit} framed)")
    for ax in (ax_one, ax_all):
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "One code z (the style), decoded as a chosen digit")
    fig.tight_layout()
    return fig


@dataclass
class ConditionalSliders:
    """:func:`conditional_sliders`' handles: display ``container``; set ``digit`` and ``sliders`` values."""

    container: widgets.VBox
    digit: widgets.Dropdown  # the label y decoded
    sliders: list  # FloatSlider per shown latent dimension: sliders[k] sets z[dims[k]]
    dims: list
    image: widgets.Image  # PNG of render_conditional_decode
    output: widgets.Output  # errors raised in callbacks appear here
    z: torch.Tensor = field(default=None, init=False)  # [latent_dim], the code shown
    pixels: torch.Tensor = field(default=None, init=False)  # [D], sigmoid(decode(z, digit)) shown
    figure: object = field(default=None, init=False)  # the (closed) matplotlib figure behind image


def conditional_sliders(model, X: torch.Tensor, y: torch.Tensor, *, example: int = 0, max_sliders: int = 6,
                        limit: float = 3.0) -> ConditionalSliders:
    """A digit dropdown, and sliders for the ``max_sliders`` latent dimensions whose posterior means vary most over
    ``(X, y)``; the picture is :func:`render_conditional_decode` at the sliders' ``z`` and the chosen digit.

    ``z`` starts at the encoding of ``X[example]`` (a chosen style); dimensions without a slider keep it. Slider
    ranges are ``[-limit, limit]``, widened to cover every encoding. Encodings are computed once, here; callbacks
    only decode. Returns the handles; never calls ``display``.
    """
    _check_cvae(model)
    example = _checks.integer("example", example, minimum=0)
    if example >= len(X):
        _checks.fail("example", f"an index below {len(X)}", example)
    shown = min(_checks.integer("max_sliders", max_sliders, minimum=1), model.latent_dim)
    limit = _checks.number("limit", limit, positive=True)
    with torch.no_grad():
        mu, _ = model.encode(X, y)  # [n, latent_dim]
    dims = mu.var(0).argsort(descending=True)[:shown].tolist()  # the most active dimensions first
    base = mu[example].clone()  # [latent_dim]
    bounds = [max(limit, math.ceil(float(mu[:, j].abs().max()))) for j in dims]
    sliders = [widgets.FloatSlider(value=float(base[j]), min=-b, max=b, step=0.05, description=f"z{j + 1}",
                                   continuous_update=False, readout_format=".2f") for j, b in zip(dims, bounds)]
    digit = widgets.Dropdown(options=list(range(model.num_classes)), value=int(y[example]), description="digit y")
    image, output = widgets.Image(format="png"), widgets.Output()
    container = widgets.VBox([widgets.HTML("<b>Choose a digit; move the sliders to change its style z</b>"),
                              widgets.HBox([widgets.VBox([digit, *sliders]), image]), output])
    handles = ConditionalSliders(container, digit, sliders, dims, image, output)

    def draw():
        z = base.clone()  # [latent_dim]
        for slider, j in zip(sliders, dims):
            z[j] = slider.value
        fig = render_conditional_decode(model, z, digit.value)
        with torch.no_grad():
            handles.pixels = torch.sigmoid(model.decode(z[None], digit.value))[0]  # [D]
        handles.z, handles.figure = z, fig
        image.value = figure_png(fig)

    update = errors_shown_in(output, draw)
    for control in (digit, *sliders):
        control.observe(update, names="value")
    update()
    return handles
