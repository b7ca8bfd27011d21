"""The objective contract of fit and evaluate, and the one copy of each formula.

* ``Objective(loss, terms, beta_term)``: fit minimises ``mean(loss + beta_t * beta_term)``, records one history
  series per named term (and ``val_<name>``), and refuses ``beta``/warm-up for an objective with no KL term;
* ``History``: named series; a name it does not record raises an error naming the ones it has;
* ``elbo_from_q`` and ``log_importance_weights`` (the one ELBO and the one set of importance weights) against
  torch.distributions;
* the value scans are skipped inside fit's steps (``_checks.data_checked_upstream``), never outside.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from support import gen as _gen
from torch.distributions import Bernoulli, Normal, kl_divergence

from vae_lesson import VAE, ELBOTerms, History, _checks, elbo, evaluate, fit, gaussian_kl, reparameterize
from vae_lesson.core.bounds import Objective, elbo_from_q, encode_gaussian, log_importance_weights
from vae_lesson.core.training import MissingSeriesError, named_terms, objective_loss

pytestmark = pytest.mark.unit


def _model(seed=0, input_dim=6, latent_dim=2):
    torch.manual_seed(seed)
    return VAE(input_dim, latent_dim, hidden_dims=(8,)).double()


def _x(n=5, d=6, seed=1):
    return (torch.rand(n, d, generator=_gen(seed), dtype=torch.float64) > 0.5).double()


# ------------------------------------------------------------------------------------------ one copy of each formula


def test_elbo_from_q_matches_torch_distributions_with_given_noise():
    model, x = _model(), _x()
    mu, logvar = torch.randn(5, 2, generator=_gen(2), dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    eps = torch.randn(3, 5, 2, generator=_gen(3), dtype=torch.float64)
    terms = elbo_from_q(model.decode, x, mu, logvar, eps=eps)
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = q.mean + q.stddev * eps  # [3, 5, 2]
    reconstruction = Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1).mean(0)  # [5]
    kl = kl_divergence(q, Normal(0.0, 1.0)).sum(-1)
    torch.testing.assert_close(terms.reconstruction, reconstruction, rtol=0, atol=1e-10)
    torch.testing.assert_close(terms.kl, kl, rtol=0, atol=1e-10)
    torch.testing.assert_close(terms.elbo, reconstruction - kl, rtol=0, atol=1e-10)


@pytest.mark.parametrize("n_samples", [1, 4])
def test_elbo_is_elbo_from_q_with_the_encoders_q(n_samples):
    model, x = _model(), _x()
    mu, logvar = encode_gaussian(model, x)
    a = elbo(model, x, n_samples, generator=_gen(5))
    b = elbo_from_q(model.decode, x, mu, logvar, n_samples, generator=_gen(5))
    for name in ELBOTerms._fields:
        assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_log_importance_weights_match_torch_distributions():
    model, x = _model(), _x()
    mu, logvar = encode_gaussian(model, x)
    log_w = log_importance_weights(model.decode, x, mu, logvar, 7, generator=_gen(4))  # [7, 5]
    eps = torch.randn(7, 5, 2, generator=_gen(4), dtype=torch.float64)  # the same draws
    q = Normal(mu, torch.exp(0.5 * logvar))
    z = mu + torch.exp(0.5 * logvar) * eps
    reference = (Bernoulli(logits=model.decode(z)).log_prob(x).sum(-1) + Normal(0.0, 1.0).log_prob(z).sum(-1)
                 - q.log_prob(z).sum(-1))
    assert log_w.shape == (7, 5)
    torch.testing.assert_close(log_w, reference, rtol=0, atol=1e-9)


def test_reparameterize_with_given_noise_broadcasts_and_refuses_a_generator():
    mu, logvar = torch.zeros(4, 3), torch.full((4, 3), math.log(4.0))
    eps = torch.randn(2, 4, 3, generator=_gen(0))
    torch.testing.assert_close(reparameterize(mu, logvar, eps=eps), 2.0 * eps)
    with pytest.raises(ValueError, match=r"^generator: expected None when eps is given"):
        reparameterize(mu, logvar, _gen(0), eps=eps)
    with pytest.raises(ValueError, match=r"^eps: expected a shape that broadcasts against mu's \[4, 3\]"):
        reparameterize(mu, logvar, eps=torch.zeros(4, 2))


def test_value_scans_are_skipped_only_inside_data_checked_upstream():
    bad = torch.tensor([[float("nan"), 0.0]])
    with pytest.raises(ValueError, match="^mu: expected finite values"):
        gaussian_kl(bad, torch.zeros(1, 2))
    with _checks.data_checked_upstream():
        assert not _checks.scanning()
        assert torch.isnan(gaussian_kl(bad, torch.zeros(1, 2))).all()  # shapes checked, values not read
        with pytest.raises(ValueError, match=r"^logvar: expected the shape of mu"):
            gaussian_kl(bad, torch.zeros(1, 3))  # shape checks still run
    assert _checks.scanning()


# ------------------------------------------------------------------------------------------------ the contract


def _custom(model, x, generator=None):
    terms = elbo(model, x, generator=generator)
    return Objective(loss=-terms.reconstruction, terms={"log_lik": terms.reconstruction, "rate": terms.kl},
                     beta_term=terms.kl)


def test_an_objective_with_named_terms_trains_like_the_elbo_and_is_recorded_by_name():
    X = _x(40, 6, seed=3).float()
    runs = {}
    for name, objective in (("elbo", None), ("custom", _custom)):
        torch.manual_seed(0)
        model = VAE(6, 2, hidden_dims=(8,))
        history = fit(model, X, num_epochs=2, batch_size=8, beta=2.0, kl_warmup_epochs=2, X_val=X[:10],
                      objective=objective, generator=_gen(0), progress=False)
        runs[name] = (history, torch.cat([p.detach().flatten() for p in model.parameters()]))
    (h_elbo, p_elbo), (h_custom, p_custom) = runs["elbo"], runs["custom"]
    assert torch.equal(p_elbo, p_custom), "loss + beta_t * beta_term is -(reconstruction - beta_t * kl)"
    assert h_custom.names() == ["log_lik", "rate", "beta", "val_log_lik", "val_rate", "seconds"]
    assert h_custom.log_lik == h_elbo.reconstruction and h_custom.val_rate == h_elbo.val_kl
    assert h_custom.beta == h_elbo.beta == [1.0, 2.0]
    assert set(h_custom.as_dict()) == {"log_lik", "rate", "val_log_lik", "val_rate", "beta"}
    torch.manual_seed(0)
    assert evaluate(VAE(6, 2, hidden_dims=(8,)), X, objective=_custom).keys() == {"log_lik", "rate"}


@settings(max_examples=40, deadline=None)
@given(beta=st.floats(0.0, 10.0), seed=st.integers(0, 2**16))
def test_objective_loss_is_the_documented_formula(beta, seed):
    g = _gen(seed)
    r, kl, extra = (torch.randn(5, generator=g, dtype=torch.float64) for _ in range(3))
    assert torch.equal(objective_loss(ELBOTerms(r - kl, r, kl), beta), -(r - beta * kl))
    assert torch.equal(objective_loss(Objective(-r, {"r": r}, beta_term=kl.abs()), beta), -r + beta * kl.abs())
    assert torch.equal(objective_loss(Objective(extra, {"e": extra})), extra)
    if beta != 1.0:
        with pytest.raises(ValueError, match="^beta: expected 1"):
            objective_loss(Objective(extra, {"e": extra}), beta)


@settings(max_examples=30, deadline=None)
@given(series=st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True),
                              st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=4), min_size=1, max_size=4),
       missing=st.from_regex(r"[a-z]{7,9}", fullmatch=True))
def test_history_returns_what_it_records_and_names_it_when_asked_for_anything_else(series, missing):
    history = History(**series)
    for name, values in series.items():
        assert history[name] == values and getattr(history, name) == values and name in history
    assert missing not in history
    for ask in (lambda: history[missing], lambda: getattr(history, missing)):
        with pytest.raises(MissingSeriesError) as info:
            ask()
        assert all(name in str(info.value) for name in series) and repr(missing) in str(info.value)
    assert isinstance(info.value, KeyError) and isinstance(info.value, AttributeError)


@pytest.mark.parametrize("out, words", [
    ((1, 2, 3), ["objective", "ELBOTerms or Objective", "tuple"]),
    (Objective(torch.zeros(4), {"val_x": torch.zeros(4)}), ["objective", "term names", "'val_x'"]),
    (Objective(torch.zeros(4), {"beta": torch.zeros(4)}), ["objective", "term names", "'beta'"]),
    (Objective(torch.zeros(4), {"x": torch.zeros(3)}), ["objective", "[batch] tensor ([4])", "'x': shape [3]"]),
    (Objective(torch.zeros(4), {"x": 1.0}), ["objective", "[batch] tensor", "float"]),
    (Objective(torch.zeros(4), [torch.zeros(4)]), ["objective", "dict", "list"]),
])
def test_bad_objective_outputs_are_named(out, words):
    with pytest.raises((TypeError, ValueError)) as info:
        named_terms(out, 4)
    assert all(w in str(info.value) for w in words), str(info.value)
    with pytest.raises((TypeError, ValueError)) as info:
        fit(VAE(6, 2, hidden_dims=(8,)), _x(8).float(), num_epochs=1, batch_size=4, progress=False,
            objective=lambda m, x, generator=None: out)
    assert all(w in str(info.value) for w in words), str(info.value)


def test_term_names_must_not_change_between_steps():
    calls = []

    def shifty(model, x, generator=None):
        calls.append(1)
        r = elbo(model, x, generator=generator).reconstruction
        return Objective(-r, {"a" if len(calls) == 1 else "b": r})

    with pytest.raises(ValueError, match=r"^objective: expected the same term names at every step \(a\), got b"):
        fit(VAE(6, 2, hidden_dims=(8,)), _x(8).float(), num_epochs=1, batch_size=4, progress=False,
            objective=shifty)


def test_a_nan_from_the_model_inside_fit_still_stops_before_the_update():
    X = _x(16).float()
    model = VAE(6, 2, hidden_dims=(8,))
    with torch.no_grad():
        model.decoder[0].bias[0] = float("nan")  # fit refuses non-finite parameters up front ...
    with pytest.raises(ValueError, match="finite parameters"):
        fit(model, X, num_epochs=1, progress=False)

    def nan_objective(m, x, generator=None):  # ... so the NaN has to appear during the step
        terms = elbo(m, x, generator=generator)
        return Objective(-terms.reconstruction * float("nan"), {"reconstruction": terms.reconstruction})

    model = VAE(6, 2, hidden_dims=(8,))
    start = {k: t.clone() for k, t in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"the loss became nan at epoch 1, step 1"):
        fit(model, X, num_epochs=1, progress=False, objective=nan_objective)
    assert all(torch.equal(start[k], t) for k, t in model.state_dict().items())


@settings(max_examples=200, deadline=None)
@given(a=st.lists(st.integers(1, 3), max_size=4), b=st.lists(st.integers(1, 3), max_size=4))
def test_the_cheap_broadcast_check_agrees_with_torch(a, b):
    from vae_lesson.core.distributions import _broadcastable

    try:
        torch.broadcast_shapes(torch.Size(a), torch.Size(b))
        expected = True
    except RuntimeError:
        expected = False
    assert _broadcastable(torch.Size(a), torch.Size(b)) == expected
