"""Bad inputs and faults (issue 13): one table of hostile but realistic calls, each asserting the exception type and
that the message names the argument (or the file), what was expected and what was got; then the fault recoveries.
"""

from __future__ import annotations

import json
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch

import vae_lesson as v
import vae_lesson.views.widgets as w
from tools.student import student_notebook
from vae_lesson.variants.conv_vae import ConvVAE
from vae_lesson.variants.cvae import ConditionalVAE

ROOT = pathlib.Path(__file__).parent.parent


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    torch.manual_seed(0)
    vae, ae = v.VAE(6, 2, (8,)), v.Autoencoder(6, 2, (8,))
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(0))
    ckpt = d / "good.pt"
    v.save_checkpoint(vae, ckpt)
    payload = torch.load(ckpt, weights_only=True)

    def variant(name, mutate):
        p = {**payload, "config": dict(payload["config"]), "state_dict": dict(payload["state_dict"])}
        mutate(p)
        torch.save(p, d / name)
        return d / name

    files = {
        "huge": variant("huge.pt", lambda p: p["config"].update(hidden_dims=[10**14])),
        "big": variant("big.pt", lambda p: p["config"].update(hidden_dims=[10**5])),
        "nostate": variant("nostate.pt", lambda p: p.pop("state_dict")),
        "unknown": variant("unknown.pt", lambda p: p["config"].update(dropout=0.1)),
        "strcfg": variant("strcfg.pt", lambda p: p["config"].update(input_dim="6")),
        "nan": variant("nan.pt", lambda p: p["state_dict"].update({"encoder.0.weight": torch.full((8, 6), np.nan)})),
        "extra": variant("extra.pt", lambda p: p["state_dict"].update({"foo": torch.zeros(1)})),
        "trunc": d / "trunc.pt",
    }
    files["trunc"].write_bytes(ckpt.read_bytes()[:300])
    for name, shape, n in (("neg", (-1, 28, 28), 0), ("neg2", (-1, -1, 28), 28), ("hugehdr", (2**31 - 1, 2, 2), 4)):
        (d / name).write_bytes(bytes([0, 0, 8, len(shape)]) + struct.pack(f">{len(shape)}i", *shape) + bytes(n))
    zero = d / "zero"
    zero.mkdir()
    for pre in ("train", "t10k"):
        (zero / f"{pre}-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3i", 0, 28, 28))
        (zero / f"{pre}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">1i", 0))
    return dict(vae=vae, ae=ae, x=x, d=d, ckpt=ckpt, X=torch.rand(20, 6), **files)


def nb_with(source: str) -> dict:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [{"cell_type": "code", "source": source, "metadata": {}, "outputs": [], "execution_count": None}],
    }


# (id, call(env), exception type, words the message must contain: the argument or file, expected, got)
CASES = [
    # float64 is accepted everywhere data meet a model (cast once): these are the non-float kinds
    (
        "encode-int",
        lambda e: e["vae"].encode(torch.ones(2, 6, dtype=torch.int64)),
        TypeError,
        ["x", "floating", "int64"],
    ),
    ("encode-list", lambda e: e["vae"].encode([[0.0] * 6]), TypeError, ["x", "torch.Tensor", "list"]),
    ("encode-shape", lambda e: e["vae"].encode(torch.rand(2, 5)), ValueError, ["x", "[batch, 6]", "[2, 5]"]),
    ("encode-255", lambda e: e["vae"].encode(torch.rand(2, 6) * 255), ValueError, ["x", "<= 1.0", "maximum"]),
    (
        "encode-nan",
        lambda e: e["vae"].encode(torch.full((2, 6), float("nan"))),
        ValueError,
        ["x", "finite", "non-finite"],
    ),
    ("decode-shape", lambda e: e["vae"].decode(torch.zeros(2, 3)), ValueError, ["z", "[batch, 2]", "[2, 3]"]),
    ("decode-1d", lambda e: e["vae"].decode(torch.zeros(2)), ValueError, ["z", "2-D or 3-D", "[2]"]),
    ("sample-0", lambda e: e["vae"].sample(0), ValueError, ["n", ">= 1", "0"]),
    ("sample-float", lambda e: e["vae"].sample(2.5), TypeError, ["n", "an int", "2.5"]),
    ("sample-huge", lambda e: e["vae"].sample(10**12), ValueError, ["n", "at most", "1000000000000"]),
    ("vae-hidden-huge", lambda e: v.VAE(784, 20, (10**14,)), ValueError, ["hidden_dims", "at most", "parameters"]),
    ("vae-latent-huge", lambda e: v.VAE(6, 10**12), ValueError, ["hidden_dims", "at most", "parameters"]),
    ("vae-input-str", lambda e: v.VAE("784", 2), TypeError, ["input_dim", "an int", "'784'"]),
    ("vae-hidden-int", lambda e: v.VAE(6, 2, 400), TypeError, ["hidden_dims", "sequence", "400"]),
    ("vae-hidden-zero", lambda e: v.VAE(6, 2, (0,)), ValueError, ["hidden_dims[0]", ">= 1", "0"]),
    # distributions and bounds
    (
        "kl-shapes",
        lambda e: v.gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4)),
        ValueError,
        ["logvar", "[2, 3]", "[2, 4]"],
    ),
    ("kl-1d", lambda e: v.gaussian_kl(torch.zeros(3), torch.zeros(3)), ValueError, ["mu", "2-D", "[3]"]),
    (
        "reparam-int",
        lambda e: v.reparameterize(torch.zeros(2, 2), torch.zeros(2, 2, dtype=torch.int64)),
        TypeError,
        ["logvar", "floating", "int64"],
    ),
    (
        "reparam-gen",
        lambda e: v.reparameterize(torch.zeros(2, 2), torch.zeros(2, 2), generator=0),
        TypeError,
        ["generator", "torch.Generator", "int"],
    ),
    (
        "gll-logvar-nan",
        lambda e: v.gaussian_log_likelihood(e["x"], e["x"], float("nan")),
        ValueError,
        ["logvar", "finite", "nan"],
    ),
    (
        "gll-logvar-str",
        lambda e: v.gaussian_log_likelihood(e["x"], e["x"], "-1"),
        TypeError,
        ["logvar", "real", "'-1'"],
    ),
    (
        "gll-broadcast",
        lambda e: v.gaussian_log_likelihood(e["x"], torch.zeros(3, 6), 0.0),
        ValueError,
        ["mean", "broadcasts", "[3, 6]"],
    ),
    (
        "bll-x-range",
        lambda e: v.bernoulli_log_likelihood(torch.zeros(4, 6), e["x"] * 2),
        ValueError,
        ["x", "<= 1.0", "maximum"],
    ),
    (
        "bll-shape",
        lambda e: v.bernoulli_log_likelihood(torch.zeros(4, 5), e["x"]),
        ValueError,
        ["logits", "[4, 6]", "[4, 5]"],
    ),
    ("elbo-ns-0", lambda e: v.elbo(e["vae"], e["x"], n_samples=0), ValueError, ["n_samples", ">= 1", "0"]),
    (
        "elbo-ns-huge",
        lambda e: v.elbo(e["vae"], e["x"], n_samples=10**9),
        ValueError,
        ["n_samples", "at most", "1000000000"],
    ),
    ("elbo-ns-float", lambda e: v.elbo(e["vae"], e["x"], n_samples=10.0), TypeError, ["n_samples", "an int", "10.0"]),
    ("elbo-ae", lambda e: v.elbo(e["ae"], e["x"]), TypeError, ["model", "(mu, logvar)", "Tensor"]),
    ("elbo-not-model", lambda e: v.elbo("vae", e["x"]), TypeError, ["model", "VAE", "str"]),
    ("iwae-k-0", lambda e: v.iwae_bound(e["vae"], e["x"], 0), ValueError, ["k", ">= 1", "0"]),
    ("iwae-rows", lambda e: v.iwae_bound(e["vae"], e["x"], 5, max_rows=0), ValueError, ["max_rows", ">= 1", "0"]),
    ("iwae-lw-huge", lambda e: v.iwae_log_weights(e["vae"], e["x"], 10**9), ValueError, ["k", "at most", "1000000000"]),
    (
        "iwae-under-confident",
        lambda e: v.iwae_bound(_under_confident(), e["x"], 3),
        ValueError,
        ["model", "stay finite", "non-finite samples"],
    ),
    # training
    ("fit-lr-0", lambda e: v.fit(e["vae"], e["x"], lr=0), ValueError, ["lr", "> 0", "0"]),
    ("fit-lr-str", lambda e: v.fit(e["vae"], e["x"], lr="1e-3"), TypeError, ["lr", "real", "'1e-3'"]),
    ("fit-epochs", lambda e: v.fit(e["vae"], e["x"], num_epochs=0), ValueError, ["num_epochs", ">= 1", "0"]),
    ("fit-batch", lambda e: v.fit(e["vae"], e["x"], batch_size=-1), ValueError, ["batch_size", ">= 1", "-1"]),
    ("fit-beta", lambda e: v.fit(e["vae"], e["x"], beta=-1), ValueError, ["beta", ">= 0", "-1"]),
    (
        "fit-beta-no-kl",
        lambda e: v.fit(e["vae"], e["x"], beta=2.0, objective=_iwae(2)),
        ValueError,
        ["beta", "no KL term to weight", "iwae_bound", "2.0"],
    ),
    (
        "fit-warmup-no-kl",
        lambda e: v.fit(e["ae"], e["x"], kl_warmup_epochs=1),
        ValueError,
        ["kl_warmup_epochs", "no KL term to weight", "reconstruction", "1"],
    ),
    ("history-missing", lambda e: v.History(elbo=[1.0]).kl, AttributeError, ["history", "(elbo)", "'kl'"]),
    (
        "elbo-from-q-decode",
        lambda e: _elbo_from_q("decode", e["x"], torch.zeros(4, 2), torch.zeros(4, 2)),
        TypeError,
        ["decode", "a function", "str"],
    ),
    (
        "elbo-from-q-rows",
        lambda e: _elbo_from_q(e["vae"].decode, e["x"], torch.zeros(3, 2), torch.zeros(3, 2)),
        ValueError,
        ["mu", "one row per example of x", "[3, 2]"],
    ),
    ("fit-X-255", lambda e: v.fit(e["vae"], e["x"] * 255), ValueError, ["X", "<= 1.0", "maximum"]),
    ("fit-X-shape", lambda e: v.fit(e["vae"], torch.rand(4, 5)), ValueError, ["X", "[n, 6]", "[4, 5]"]),
    ("fit-X-empty", lambda e: v.fit(e["vae"], torch.rand(0, 6)), ValueError, ["X", "at least one", "empty"]),
    (
        "fit-Xval-shape",
        lambda e: v.fit(e["vae"], e["x"], X_val=torch.rand(3, 4)),
        ValueError,
        ["X_val", "[n, 6]", "[3, 4]"],
    ),
    ("fit-device-cuda", lambda e: v.fit(e["vae"], e["x"], device="cuda"), ValueError, ["device", "CUDA", "'cuda'"])
    if not torch.cuda.is_available()
    else ("skip", None, None, None),
    (
        "fit-device-bogus",
        lambda e: v.fit(e["vae"], e["x"], device="gpu"),
        ValueError,
        ["device", "'cpu' or 'cuda'", "'gpu'"],
    ),
    (
        "fit-device-int",
        lambda e: v.fit(e["vae"], e["x"], device=0.5),
        TypeError,
        ["device", "str or torch.device", "float"],
    ),
    ("fit-objective", lambda e: v.fit(e["vae"], e["x"], objective="elbo"), TypeError, ["objective", "function", "str"]),
    (
        "fit-no-params",
        lambda e: v.fit(torch.nn.Identity(), e["x"]),
        ValueError,
        ["model", "trainable parameters", "none"],
    ),
    ("fit-nan-model", lambda e: v.fit(_nan_model(), e["x"]), ValueError, ["model", "finite parameters", "NaN or inf"]),
    (
        "evaluate-device",
        lambda e: v.evaluate(e["vae"], e["x"], device="cuda:3"),
        ValueError,
        ["device", "CUDA", "'cuda:3'"],
    )
    if not torch.cuda.is_available()
    else ("skip", None, None, None),
    ("evaluate-ns", lambda e: v.evaluate(e["vae"], e["x"], n_samples=0), ValueError, ["n_samples", ">= 1", "0"]),
    # checkpoints: the file is named
    ("ckpt-huge", lambda e: v.load_checkpoint(e["huge"]), ValueError, ["huge.pt", "valid config", "parameters"]),
    ("ckpt-big", lambda e: v.load_checkpoint(e["big"]), ValueError, ["big.pt", "of shape [100000, 2]", "[8, 2]"]),
    (
        "ckpt-nostate",
        lambda e: v.load_checkpoint(e["nostate"]),
        ValueError,
        ["nostate.pt", "'state_dict' entry", "entries"],
    ),
    (
        "ckpt-unknown",
        lambda e: v.load_checkpoint(e["unknown"]),
        ValueError,
        ["unknown.pt", "config keys among", "dropout"],
    ),
    ("ckpt-strcfg", lambda e: v.load_checkpoint(e["strcfg"]), ValueError, ["strcfg.pt", "valid config", "'6'"]),
    ("ckpt-nan", lambda e: v.load_checkpoint(e["nan"]), ValueError, ["nan.pt", "finite weights", "48 NaN"]),
    (
        "ckpt-extra",
        lambda e: v.load_checkpoint(e["extra"]),
        ValueError,
        ["extra.pt", "weights of VAE", "unexpected ['foo']"],
    ),
    (
        "ckpt-trunc",
        lambda e: v.load_checkpoint(e["trunc"]),
        ValueError,
        ["trunc.pt", "vae_lesson checkpoint", "refuses"],
    ),
    (
        "ckpt-map-cuda",
        lambda e: v.load_checkpoint(e["ckpt"], map_location="cuda"),
        ValueError,
        ["map_location", "CUDA is not available", "'cuda'"],
    )
    if not torch.cuda.is_available()
    else ("skip", None, None, None),
    (
        "ckpt-map-bogus",
        lambda e: v.load_checkpoint(e["ckpt"], map_location="gpu0"),
        ValueError,
        ["map_location", "device", "'gpu0'"],
    ),
    (
        "ckpt-missing",
        lambda e: v.load_checkpoint(e["d"] / "nope.pt"),
        FileNotFoundError,
        ["path", "existing", "nope.pt"],
    ),
    ("ckpt-path-int", lambda e: v.load_checkpoint(3), TypeError, ["path", "file name", "int"]),
    (
        "save-no-folder",
        lambda e: v.save_checkpoint(e["vae"], e["d"] / "missing" / "m.pt"),
        FileNotFoundError,
        ["path", "existing folder", "missing"],
    ),
    ("save-folder", lambda e: v.save_checkpoint(e["vae"], e["d"]), ValueError, ["path", "not a folder", "bad"]),
    (
        "save-linear",
        lambda e: v.save_checkpoint(torch.nn.Linear(2, 2), e["d"] / "l.pt"),
        TypeError,
        ["model", "model class of vae_lesson", "Linear"],
    ),
    ("register-int", lambda e: v.register_model(42), TypeError, ["cls", "nn.Module", "42"]),
    # data and IDX files
    ("mnist-split", lambda e: v.load_mnist("training"), ValueError, ["split", "'train'", "'training'"]),
    ("digits-split", lambda e: v.load_digits("validation"), ValueError, ["split", "'val'", "'validation'"]),
    ("mnist-source-int", lambda e: v.load_mnist(source=3), TypeError, ["source", "folder", "int"]),
    (
        "mnist-source-missing",
        lambda e: v.load_mnist(source=e["d"] / "nowhere"),
        ValueError,
        ["source", "folder", "nowhere"],
    ),
    (
        "mnist-zero-images",
        lambda e: v.load_mnist(source=e["d"] / "zero"),
        ValueError,
        ["train-images-idx3-ubyte", "at least one image", "0 images"],
    ),
    ("idx-negative", lambda e: v.read_idx(e["d"] / "neg"), ValueError, ["neg", "sizes >= 0", "[-1, 28, 28]"]),
    ("idx-negative2", lambda e: v.read_idx(e["d"] / "neg2"), ValueError, ["neg2", "sizes >= 0", "[-1, -1, 28]"]),
    (
        "idx-huge-header",
        lambda e: v.read_idx(e["d"] / "hugehdr"),
        ValueError,
        ["hugehdr", "bytes for shape", "truncated"],
    ),
    ("idx-missing", lambda e: v.read_idx(e["d"] / "nope"), FileNotFoundError, ["path", "existing IDX file", "nope"]),
    (
        "idx-ndim-str",
        lambda e: v.read_idx(e["d"] / "neg", expected_ndim="3"),
        TypeError,
        ["expected_ndim", "int", "'3'"],
    ),
    # widgets: X is named X; labels may be strings except on the plane
    ("widget-X-255", lambda e: w.latent_sliders(e["vae"], e["X"] * 255), ValueError, ["X", "<= 1.0", "maximum"]),
    ("widget-X-shape", lambda e: w.posterior_viewer(e["vae"], e["X"][:, :4]), ValueError, ["X", "[n, 6]", "[20, 4]"]),
    (
        "widget-X-one",
        lambda e: w.latent_interpolation(e["vae"], e["X"][:1]),
        ValueError,
        ["X", "at least two", "[1, 6]"],
    ),
    (
        "widget-y-short",
        lambda e: w.latent_sliders(e["vae"], e["X"], [1, 2]),
        ValueError,
        ["y", "one label per image", "2 labels"],
    ),
    (
        "widget-y-float",
        lambda e: w.latent_sliders(e["vae"], e["X"], [0.5] * 20),
        TypeError,
        ["y[0]", "int or a string", "0.5"],
    ),
    (
        "widget-y-str",
        lambda e: w.latent_sliders(e["vae"], e["X"], "0123"),
        TypeError,
        ["y", "one label per image", "str"],
    ),
    (
        "plane-y-str",
        lambda e: w.latent_plane(e["vae"], e["X"], ["cat"] * 20),
        TypeError,
        ["y", "integer labels", "'cat'"],
    ),
    ("plane-3d", lambda e: w.latent_plane(v.VAE(6, 3, (4,)), e["X"]), ValueError, ["model", "latent_dim = 2", "3"]),
    ("widget-digit", lambda e: w.latent_sliders(e["vae"], e["X"], digit=20), ValueError, ["digit", "0 to 19", "20"]),
    (
        "widget-dims",
        lambda e: w.posterior_viewer(e["vae"], e["X"], dims=(0, 0)),
        TypeError,
        ["dims", "two different", "(0, 0)"],
    ),
    # the student writer's functions
    (
        "student-markers",
        lambda e: student_notebook(nb_with("x = 1\n### END SOLUTION")),
        ValueError,
        ["cell 1", "only after a matching", "without one"],
    ),
    (
        "student-out-same",
        lambda e: v_student_same(e),
        ValueError,
        ["out_dir", "other than the notebooks' own", "would"],
    ),
]
CASES = [c for c in CASES if c[0] != "skip"]


def v_student_same(e):
    from tools.student import write_student_copies

    nb = e["d"] / "01_x.ipynb"
    nb.write_text(json.dumps(nb_with("1")))
    return write_student_copies(e["d"], [nb])


def _iwae(k):
    from vae_lesson.variants.iwae_training import iwae_objective

    return iwae_objective(k)


def _elbo_from_q(*args):
    from vae_lesson.core.bounds import elbo_from_q

    return elbo_from_q(*args)


def _under_confident():
    model = v.VAE(6, 2, (8,))
    with torch.no_grad():
        model.encoder[-1].bias[2:] = 500.0  # logvar = 500: exp(250) overflows float32, z = inf
    return model


def _nan_model():
    model = v.VAE(6, 2, (8,))
    with torch.no_grad():
        model.decoder[0].weight[0, 0] = float("nan")
    return model


def test_the_table_has_enough_cases():
    assert len(CASES) >= 60, len(CASES)


@pytest.mark.parametrize("name, call, error, words", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_named(env, name, call, error, words):
    with pytest.raises(error) as info:
        call(env)
    message = str(info.value)
    assert info.type is error or issubclass(info.type, error)
    assert "expected" in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


# ------------------------------------------------------------------------------------------- float64 is accepted


def test_float64_data_are_cast_once_and_give_the_float32_numbers():
    torch.manual_seed(0)
    model = v.VAE(6, 2, (8,))
    x = torch.rand(5, 6)
    for f in (
        lambda t: model.encode(t)[0],
        lambda t: v.iwae_bound(model, t, 4, generator=torch.Generator().manual_seed(1)),
        lambda t: v.elbo(model, t, n_samples=3, generator=torch.Generator().manual_seed(1)).elbo,
        lambda t: model.reconstruct(t),
        lambda t: torch.tensor(v.evaluate(model, t, generator=torch.Generator().manual_seed(1))["elbo"]),
    ):
        a, b = f(x), f(x.double())
        assert a.dtype == b.dtype == torch.float32 and torch.equal(a, b)
    h32 = v.fit(v.VAE(6, 2, (8,)), x, num_epochs=2, generator=torch.Generator().manual_seed(2), progress=False)
    torch.manual_seed(0)
    h64 = v.fit(v.VAE(6, 2, (8,)), x.double(), num_epochs=2, generator=torch.Generator().manual_seed(2), progress=False)
    assert h64.elbo and all(np.isfinite(h64.elbo))
    assert len(h32) == len(h64)


# ------------------------------------------------------------------------------------------------ numerics


def test_gaussian_log_likelihood_is_finite_for_over_confident_variances():
    x = torch.rand(3, 6)
    got = v.gaussian_log_likelihood(x, x, -90.0)
    assert torch.allclose(got, torch.full((3,), -0.5 * 6 * (np.log(2 * np.pi) - 90.0)))
    off = v.gaussian_log_likelihood(x, x + 0.1, -90.0)  # (0.1^2) e^90 overflows exp(90) in float32 but not the product
    ref = torch.distributions.Normal(x.double() + 0.1, torch.tensor(-45.0).double().exp()).log_prob(x.double()).sum(-1)
    assert torch.isfinite(off).all() and torch.allclose(off.double(), ref, rtol=1e-5)


def test_gaussian_log_likelihood_ordinary_inputs_unchanged():
    g = torch.Generator().manual_seed(0)
    x, mean, logvar = torch.rand(40, 5, generator=g), torch.randn(40, 5, generator=g), torch.randn(40, 5, generator=g)
    naive = -0.5 * (np.log(2 * np.pi) + logvar + (x - mean).pow(2) * torch.exp(-logvar)).sum(-1)
    assert torch.equal(v.gaussian_log_likelihood(x, mean, logvar), naive)


def test_iwae_is_finite_for_an_over_confident_encoder():
    model = v.VAE(6, 2, (8,))
    with torch.no_grad():
        model.encoder[-1].bias[2:] = -90.0
    x = torch.rand(4, 6)
    terms = v.elbo(model, x)
    assert torch.isfinite(terms.elbo).all()
    assert torch.isfinite(v.iwae_bound(model, x, 7)).all()


def test_elbo_chunked_decoding_gives_the_same_bits(monkeypatch):
    import vae_lesson.core.bounds as bounds

    torch.manual_seed(0)
    model, x = v.VAE(6, 2, (8,)), torch.rand(30, 6)
    with torch.no_grad():
        one = v.elbo(model, x, n_samples=50, generator=torch.Generator().manual_seed(3))
        monkeypatch.setattr(bounds, "MAX_DECODE_ROWS", 70)  # chunks of 2 samples
        chunked = v.elbo(model, x, n_samples=50, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(one, chunked))


# --------------------------------------------------------------------------------------- fault: divergence


@pytest.mark.parametrize("lr", [1e3, 10.0, 3.0])
def test_divergence_always_ends_in_the_floating_point_error_before_the_bad_update(lr):
    X, _ = v.load_digits("train")
    g = v.seed_everything(0)
    model = v.VAE(64, 4, (32,))
    before = []

    def objective(m, x, generator=None):
        before.append({k: t.clone() for k, t in m.state_dict().items()})
        return v.elbo(m, x, generator=generator)

    with pytest.raises(FloatingPointError) as info:
        v.fit(model, X, num_epochs=30, lr=lr, generator=g, progress=False, objective=objective)
    message = str(info.value)
    for word in ("epoch", "step", f"lr={lr:g}", f"try lr={lr / 10:g}"):
        assert word in message, message
    assert all(torch.equal(before[-1][k], t) for k, t in model.state_dict().items())
    assert all(torch.isfinite(t).all() for t in model.state_dict().values())


def test_a_non_finite_gradient_stops_before_the_update(monkeypatch):
    import vae_lesson.core.training as training

    X, _ = v.load_digits("train")
    model = v.VAE(64, 4, (32,))
    start = {k: t.clone() for k, t in model.state_dict().items()}
    monkeypatch.setattr(training, "_grads_finite", lambda params: False)
    with pytest.raises(FloatingPointError, match="gradient became non-finite"):
        v.fit(model, X, num_epochs=1, progress=False)
    assert all(torch.equal(start[k], t) for k, t in model.state_dict().items())


# ----------------------------------------------------------------------------------- fault: damaged cache


@pytest.mark.slow  # each rebuilds the MNIST cache from the bundled CSV (about 4 s)
@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "partial", "flipped", "folder"])
def test_a_damaged_cache_file_is_rebuilt_and_nothing_else_touched(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("VAE_LESSON_CACHE", str(tmp_path))
    X0, y0 = v.load_mnist("test")
    cache = tmp_path / "mnist_subset_v1.npz"
    good = cache.read_bytes()
    (tmp_path / "notes.txt").write_text("keep")
    if damage == "truncated":
        cache.write_bytes(good[: len(good) // 2])
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "garbage":
        cache.write_bytes(b"not a zip")
    elif damage == "partial":
        np.savez(cache, train_x=np.zeros((4000, 784), np.uint8))
    elif damage == "flipped":
        b = bytearray(good)
        b[len(b) // 3 : len(b) // 3 + 8] = bytes(8)
        cache.write_bytes(bytes(b))
    else:
        cache.unlink()
        cache.mkdir()
    X, y = v.load_mnist("test")
    assert torch.equal(X, X0) and torch.equal(y, y0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist_subset_v1.npz", "notes.txt"]
    if damage != "folder":
        assert cache.read_bytes() == good or sorted(np.load(cache).files) == ["test_x", "test_y", "train_x", "train_y"]


# ------------------------------------------------------------------------------------ fault: checkpoints


def test_a_checkpoint_asking_for_terabytes_allocates_nothing(tmp_path):
    import resource

    path = tmp_path / "m.pt"
    v.save_checkpoint(v.VAE(6, 2, (8,)), path)
    payload = torch.load(path, weights_only=True)
    payload["config"]["hidden_dims"] = [2**20]  # 2 x 6e6 floats if built; the weights in the file are [8, 6]
    torch.save(payload, path)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match="m.pt: expected state_dict"):
        v.load_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 20_000  # KiB: nothing the size of the model


def test_saving_and_loading_every_registered_model_round_trips(tmp_path):
    for model in (v.VAE(6, 2, (8,)), v.Autoencoder(6, 2), ConvVAE(8, 2, (4,)), ConditionalVAE(6, 2, 3, (8,))):
        path = tmp_path / "m.pt"
        v.save_checkpoint(model, path)
        loaded = v.load_checkpoint(path)
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))


# ---------------------------------------------------------------------------------- the instructor CLIs


def run(module, *args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", f"tools.{module}", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def bad_notebooks(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "notebooks").mkdir()
    files = {
        "text": "hello\n",
        "json": '{"a": 1',
        "notnb": '{"a": 1}',
        "markers": json.dumps(nb_with("x = 1\n### BEGIN SOLUTION\ny = 2")),
    }
    for name, text in files.items():
        (d / "notebooks" / f"{name}.ipynb").write_text(text)
    (d / "notebooks" / "bin.ipynb").write_bytes(b"\x89PNG\x00\xff")
    return d


@pytest.mark.parametrize("module", ["student", "slides", "notebook_runner"])
@pytest.mark.parametrize(
    "name, words",
    [
        ("missing", ["missing.ipynb", "no such file"]),
        ("text", ["text.ipynb", "invalid JSON"]),
        ("json", ["json.ipynb", "invalid JSON", "line 1"]),
        ("notnb", ["notnb.ipynb", "not one"]),
        ("bin", ["bin.ipynb", "not UTF-8"]),
    ],
)
def test_cli_bad_file_is_one_line_and_writes_nothing(bad_notebooks, module, name, words):
    args = ([] if module == "notebook_runner" else ["out"]) + [f"notebooks/{name}.ipynb"]
    if module == "notebook_runner":
        args = ["--check", *args]
    result = run(module, *args, cwd=bad_notebooks)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(w in lines[0] for w in words), lines[0]
    assert not (bad_notebooks / "out").exists()


def test_student_unbalanced_markers_name_the_notebook_and_cell(bad_notebooks):
    result = run("student", "out", "notebooks/markers.ipynb", cwd=bad_notebooks)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "markers.ipynb" in result.stderr and "cell 1" in result.stderr and "never closed" in result.stderr
    assert not (bad_notebooks / "out").exists()


def test_student_from_a_folder_without_notebooks_fails_and_creates_nothing(tmp_path):
    for module in ("student", "slides"):
        result = run(module, "out", cwd=tmp_path)
        assert result.returncode == 1 and "no notebooks/ folder" in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / "out").exists()
    result = run("notebook_runner", cwd=tmp_path)
    assert result.returncode == 1 and "no notebooks/ folder" in result.stderr


def test_student_refuses_the_notebooks_own_folder_and_overwrites_nothing(tmp_path):
    (tmp_path / "notebooks").mkdir()
    source = tmp_path / "notebooks" / "01_a.ipynb"
    source.write_text(json.dumps(nb_with("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION")))
    before = source.read_bytes()
    result = run("student", "notebooks", cwd=tmp_path)
    assert result.returncode == 1 and "out_dir" in result.stderr and "Traceback" not in result.stderr
    assert source.read_bytes() == before


def test_notebook_runner_names_the_failing_cell_and_writes_nothing(tmp_path):
    path = tmp_path / "fails.ipynb"
    nb = nb_with("1 / 0")
    nb["cells"][0]["id"] = "a1"
    path.write_text(json.dumps(nb))
    before = path.read_bytes()
    result = run("notebook_runner", path, cwd=tmp_path)
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        len(errors) == 1 and "fails.ipynb" in errors[0] and "cell 1" in errors[0] and "ZeroDivisionError" in errors[0]
    )
    assert path.read_bytes() == before


@pytest.mark.parametrize("make", ["conv", "cvae", "vq"])
def test_variants_accept_float64_data_cast_once(make):
    """The float64 rule holds for the variants too: the same numbers as float32 data, no raw dtype error."""
    from vae_lesson.variants.conv_vae import ConvVAE
    from vae_lesson.variants.cvae import ConditionalVAE
    from vae_lesson.variants.vq_vae import VQVAE

    torch.manual_seed(0)
    x = torch.rand(3, 784)
    if make == "conv":
        model = ConvVAE()
        assert all(torch.equal(a, b) for a, b in zip(model.encode(x.double()), model.encode(x)))
    elif make == "cvae":
        model = ConditionalVAE(784, 4, 10)
        y = torch.tensor([0, 1, 2])
        assert all(torch.equal(a, b) for a, b in zip(model.encode(x.double(), y), model.encode(x, y)))
    else:
        model = VQVAE(784)
        assert torch.equal(model.encode(x.double()), model.encode(x))
