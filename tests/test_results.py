"""tools.results: the comparison table, checked in its quick configuration (2 seeds, 1 epoch, k = 20)."""

import json
import math

import pytest
import torch

from tools.results import KINDS, MODELS, QUICK, Budget, Spec, main, run, to_markdown, train, write
from vae_lesson import gaussian_kl, iwae_bound, load_mnist

NUMBERS = ("parameters", "train_seconds", "eval_seconds", "neg_elbo", "distortion", "rate", "neg_log_px",
           "neg_log_px_se", "iwae_gain", "bits_per_dim", "bits_per_dim_elbo", "active_units", "fd")
MC_NOISE = 1.0  # nats: the ELBO (2 draws per image) and IWAE-20 on 100 images are Monte Carlo estimates


def load_test(n):
    return load_mnist("test")[0][:n]  # [n, 784]


def mlp_params(*widths):
    """Weights and biases of Linear layers through ``widths``, counted by hand."""
    return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))


def conv_params(c_in, c_out, kernel=4):
    return c_in * c_out * kernel * kernel + c_out


@pytest.fixture(scope="module")
def quick():
    return run(QUICK)


@pytest.fixture(scope="module")
def rows(quick):
    return {row["name"]: row for row in quick["rows"]}


def test_every_model_has_a_row_in_the_table_order(quick):
    assert [row["name"] for row in quick["rows"]] == [spec.name for spec in MODELS]
    assert {row["kind"] for row in quick["rows"]} == set(KINDS)
    assert {"AE", "VAE", "CVAE", "VQ-VAE", "Conv VAE"} <= {row["name"] for row in quick["rows"]}
    assert sum(name.startswith("β-VAE") for name in (s.name for s in MODELS)) == 2
    assert quick["meta"]["quick"] and quick["meta"]["n_train"] == QUICK.n_train


def test_numbers_are_finite_and_missing_only_where_undefined(quick):
    for row in quick["rows"]:
        for key in NUMBERS:
            undefined = (row["kind"] == "ae" and key not in ("parameters", "train_seconds", "eval_seconds",
                                                              "distortion")) or (row["kind"] in ("vq", "diffusion")
                                                                                 and key == "active_units")
            assert (row[key] is None) == undefined, (row["name"], key)
            if row[key] is not None:
                assert math.isfinite(row[key]) and row[key] >= 0, (row["name"], key, row[key])
        assert row["parameters"] > 0 and row["train_seconds"] > 0


def test_every_number_is_averaged_over_the_seeds(quick):
    seeds = quick["meta"]["seeds"]
    assert seeds == [0, 1] and quick["meta"]["n_val"] == QUICK.n_val
    for row in quick["rows"]:
        for key in ("neg_elbo", "neg_log_px", "fd", "iwae_gain"):
            if row[key] is not None:
                values = row[key + "_seeds"]
                assert len(values) == len(seeds) and row[key] == pytest.approx(sum(values) / len(values)), key
                if not (row["kind"] == "diffusion" and key == "iwae_gain"):  # 0 by construction: no IWAE
                    assert len(set(values)) == len(values), ("another seed, another model", row["name"], key)


def test_differences_from_the_reference_are_paired_and_have_standard_errors(quick, rows):
    for name in ("VAE", "VAE, binarized"):
        assert rows[name]["diff_vs_vae"] == 0.0 and rows[name]["diff_vs_vae_se"] == 0.0
    for row in quick["rows"]:
        if row["neg_log_px"] is None:
            assert row["diff_vs_vae"] is None
            continue
        # binarized rows are paired with the binarized VAE (the same binary test images), the others with the VAE
        reference = "VAE, binarized" if row["data"] == "binarized" else "VAE"
        assert row["reference"] == reference
        # the mean of per-image differences is the difference of the means (both seed-averaged, same images)
        assert row["diff_vs_vae"] == pytest.approx(row["neg_log_px"] - rows[reference]["neg_log_px"], abs=1e-3)
        assert row["neg_log_px_se"] > 0 and math.isfinite(row["diff_vs_vae_se"]), row["name"]
        assert row["name"] == reference or row["diff_vs_vae_se"] > 0


def test_binarized_rows_are_scored_on_the_fixed_binarized_test_images(rows):
    from tools.results import _per_image_elbo

    spec = next(s for s in MODELS if s.cli_key == "vae-bin")
    assert spec.fit_kwargs == {"binarize": True} and spec.data == "binarized"
    X, y = (t[:QUICK.n_train] for t in load_mnist("train"))
    model = train(spec, X, y, QUICK, seed=0)[0]
    X_bin = load_mnist("test", binarized=True)[0][:QUICK.n_test]
    with torch.no_grad():  # the ELBO on the binary images, not on the grey ones
        neg_elbo = -_per_image_elbo(model, X_bin[:QUICK.n_test], 50, torch.Generator().manual_seed(0)).elbo.mean()
    assert abs(neg_elbo.item() - rows["VAE, binarized"]["neg_elbo_seeds"][0]) < MC_NOISE


def test_only_selects_rows_with_their_references_and_merges_them(quick, tmp_path):
    from tools.results import merge, select

    assert [s.name for s in select(["iwae-bin"])] == ["VAE, binarized", "IWAE, k = 5, binarized"]
    assert [s.name for s in select(["beta-4"])] == ["VAE", "β-VAE, β = 4"]
    with pytest.raises(ValueError, match="--only: expected row keys"):
        select(["gan"])
    partial = run(QUICK, models=select(["vae-bin"]))
    merged = merge(quick, partial)
    assert [row["name"] for row in merged["rows"]] == [row["name"] for row in quick["rows"]]
    by_name = {row["name"]: row for row in merged["rows"]}
    assert by_name["VAE, binarized"] == partial["rows"][0] and by_name["VAE"] == quick["rows"][1]
    assert merged["meta"]["updates"][-1]["rows"] == ["VAE, binarized"] and "regenerated" in to_markdown(merged)
    other = json.loads(json.dumps(partial))
    other["meta"]["seeds"] = [0, 1, 2]
    with pytest.raises(ValueError, match="seeds"):
        merge(quick, other)
    write(quick, tmp_path)
    assert main(["--quick", "--only", "ae", "--out", str(tmp_path)]) == 0
    assert [row["name"] for row in json.loads((tmp_path / "results.json").read_text())["rows"]] == \
        [row["name"] for row in quick["rows"]]
    assert main(["--quick", "--only", "ae", "--out", str(tmp_path / "empty")]) == 2


def test_frechet_distance_has_a_floor_below_the_samples(quick):
    floor = quick["meta"]["fd_floor"]
    assert 0 < floor < min(row["fd"] for row in quick["rows"] if row["fd"] is not None)


def test_the_bound_is_tighter_than_the_elbo_and_the_elbo_is_distortion_plus_rate(quick):
    for row in quick["rows"]:
        if row["neg_log_px"] is None:
            continue
        if row["kind"] != "cvae":  # the CVAE's ELBO is conditional: compared with its conditional IWAE (notes)
            assert row["neg_elbo"] >= row["neg_log_px"] - MC_NOISE, row["name"]
            assert row["iwae_gain"] == pytest.approx(row["neg_elbo"] - row["neg_log_px"], abs=1e-3)
        assert row["neg_elbo"] == pytest.approx(row["distortion"] + row["rate"], abs=1e-3), row["name"]


def test_bits_per_dim_is_nats_over_784_ln2(quick):
    for row in quick["rows"]:
        for nats, bits in (("neg_log_px", "bits_per_dim"), ("neg_elbo", "bits_per_dim_elbo")):
            if row[nats] is not None:
                assert row[bits] == pytest.approx(row[nats] / (784 * math.log(2)), rel=1e-12)


def test_parameter_counts_match_the_architectures_by_hand(rows):
    assert rows["AE"]["parameters"] == mlp_params(784, 400, 20) + mlp_params(20, 400, 784)
    vae = mlp_params(784, 400, 40) + mlp_params(20, 400, 784)
    for name in ("VAE", "β-VAE, β = 0.5", "β-VAE, β = 4", "IWAE, k = 5"):
        assert rows[name]["parameters"] == vae
    assert rows["CVAE"]["parameters"] == mlp_params(794, 400, 40) + mlp_params(30, 400, 784)
    prior = 256 * 256 + 256  # one masked linear layer on 8 positions x 32 one-hot codes
    assert rows["VQ-VAE"]["parameters"] == mlp_params(784, 400, 64) + mlp_params(64, 400, 784) + 32 * 8 + prior
    assert rows["VQ-VAE"]["notes"]["prior_parameters"] == prior
    conv = (conv_params(1, 16) + conv_params(16, 32) + mlp_params(32 * 7 * 7, 40)
            + mlp_params(20, 32 * 7 * 7) + conv_params(32, 16) + conv_params(16, 1))
    assert rows["Conv VAE"]["parameters"] == conv
    assert rows["VampPrior VAE"]["parameters"] == vae + 50 * 784  # 50 pseudo-inputs, one image each
    assert rows["MoG-prior VAE"]["parameters"] == vae + 50 * (20 + 20 + 1)  # means, log-variances, logits
    hierarchy = (mlp_params(784, 400) + mlp_params(400, 2 * 8) + mlp_params(400 + 8, 64, 2 * 20)
                 + mlp_params(8, 64, 2 * 20) + mlp_params(20, 400, 784))
    assert rows["Hierarchical VAE"]["parameters"] == hierarchy
    # step embedding 10 x 32, the MLP on [z_t, embedding] with two outputs per pixel, one gate offset per step
    assert rows["Diffusion, T = 10"]["parameters"] == 10 * 32 + mlp_params(784 + 32, 400, 2 * 784) + 10


def test_active_units_count_the_activity_above_burdas_threshold(quick):
    for row in quick["rows"]:
        if row["active_units"] is not None:
            activity = row["notes"]["activity"]  # Var_x mu_j(x), one per latent dimension, first seed
            assert len(activity) == 20 and row["active_units_seeds"][0] == sum(a > 0.01 for a in activity)
            assert min(row["notes"]["weakest_seeds"]) <= min(activity)


def test_vq_vae_row_reports_the_neighbour_sum_above_its_point_mass_elbo(rows):
    vq = rows["VQ-VAE"]
    for neg_elbo, neg_bound in zip(vq["neg_elbo_seeds"], vq["neg_log_px_seeds"]):
        assert neg_bound < neg_elbo, "the neighbour sum contains the point-mass term: never looser, exactly"
    assert vq["iwae_gain"] == pytest.approx(vq["neg_elbo"] - vq["neg_log_px"], abs=1e-3) and vq["iwae_gain"] > 0
    uniform_rate = 8 * math.log(32)  # nats, -log of the uniform prior over 32^8 code sequences
    assert vq["notes"]["neg_elbo_uniform_prior"] == pytest.approx(vq["distortion"] + uniform_rate, abs=1e-3)
    assert 1 <= vq["notes"]["perplexity"] <= 32
    assert all(1 <= step <= QUICK.prior_steps for step in vq["notes"]["prior_steps_chosen"])


def test_cvae_reports_the_marginal_in_the_column_and_the_conditional_in_a_note(rows):
    cvae = rows["CVAE"]
    given_y = cvae["notes"]["neg_log_px_given_y"]
    assert math.isfinite(given_y) and given_y > 0
    # log p(x) >= log p(y) + log p(x|y) = log p(x|y) - log 10: the marginal bound is at most log 10 worse
    assert cvae["neg_log_px"] <= given_y + math.log(10) + MC_NOISE
    assert cvae["bits_per_dim"] == pytest.approx(cvae["neg_log_px"] / (784 * math.log(2)))


def test_cvae_marginal_bound_against_a_direct_computation():
    from tools.results import _cvae_bounds
    from vae_lesson.variants.cvae import ConditionalVAE, log_weights_per_label

    torch.manual_seed(0)
    model = ConditionalVAE(6, 2, 3, (5,))
    X = torch.rand(4, 6, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 1])
    marginal, conditional = _cvae_bounds(model, X, y, 30, torch.Generator().manual_seed(2))
    # the same importance samples, then the mixture written out: log of (1/3) sum_y of the mean weight per label
    log_w = log_weights_per_label(model, X, 10, torch.Generator().manual_seed(2))  # [10, 4, 3]
    p_hat = log_w.double().exp().mean(0)  # [4, 3], unbiased estimates of p(x|y)
    assert torch.allclose(marginal.double(), (p_hat.mean(1)).log(), atol=1e-4)
    assert torch.allclose(conditional.double(), p_hat[torch.arange(4), y].log(), atol=1e-4)


def test_a_row_does_not_depend_on_the_models_before_it(rows):
    alone = run(QUICK, models=[MODELS[3]])["rows"][0]
    for key in set(NUMBERS) - {"train_seconds", "eval_seconds"}:
        assert alone[key] == rows[MODELS[3].name][key], key
    assert alone["diff_vs_vae"] is None, "no VAE row to compare with"


def test_markdown_and_json_files(quick, tmp_path):
    json_path, md_path = write(quick, tmp_path / "out")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(quick))
    table = md_path.read_text()
    assert table == to_markdown(quick)
    assert f"{quick['meta']['cores']} cores" in table and quick["meta"]["torch"] in table
    for spec in MODELS:
        assert sum(line.startswith(f"| {spec.name} |") for line in table.splitlines()) == 1, spec.name
    ae_row = next(line for line in table.splitlines() if line.startswith("| AE |"))
    assert ae_row.count("n/a") == 9 and "(results.json)" in table
    assert "cross-entropy, not a normalised density" in table and "binarized-MNIST" in table
    assert "neighbour sum" in table and "log Σ_y p(y) IWAE-2(x\\|y)" in table


def test_cli_quick_writes_and_prints_the_table(tmp_path, capsys):
    assert main(["--quick", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| VQ-VAE |" in printed and (tmp_path / "results.json").is_file()
    assert printed == (tmp_path / "README.md").read_text() + "\n"


def test_argument_errors():
    with pytest.raises(ValueError, match="k: expected an int >= 1"):
        Budget(k=0)
    with pytest.raises(TypeError, match="num_epochs"):
        Budget(num_epochs=1.5)
    with pytest.raises(ValueError, match="k: expected at least 10"):
        Budget(k=5)
    with pytest.raises(TypeError, match="budget"):
        run("quick")
    with pytest.raises(ValueError, match="spec.kind"):
        train(Spec("GAN", "not a course model", MODELS[1].build, kind="gan"), None, None, QUICK)


def test_learned_prior_rows_evaluate_with_the_learned_prior():
    """With a MoG prior set to N(0, I) (every component at 0 with unit variance), the learned-prior evaluation must
    reproduce the course VAE's closed-form KL and IWAE bound of the same encoder and decoder: a reference the
    learned-prior code did not write. A learned prior that is not N(0, I) must change the rate."""
    from tools.results import evaluate_model
    from vae_lesson.variants.learned_priors import LearnedPriorVAE

    spec = next(s for s in MODELS if s.cli_key == "mog")
    torch.manual_seed(0)
    model = LearnedPriorVAE(784, 20, (400,), prior="mog", n_components=3).eval()
    with torch.no_grad():
        model.prior_mu.zero_()
        model.prior_logvar.zero_()
    X = load_test(50)
    budget = Budget(n_test=50, k=200, elbo_samples=50, n_samples=50)
    row = evaluate_model(spec, model, None, X, None, budget)
    with torch.no_grad():
        closed_form = gaussian_kl(*model.vae.encode(X)).mean().item()  # KL(q || N(0, I)), exact
        iwae = iwae_bound(model.vae, X, 200, generator=torch.Generator().manual_seed(5)).mean().item()
    # Monte Carlo: 50 draws per image over 50 images; the stated s.e. is the scale of its error
    assert abs(row["rate"] - closed_form) < 5 * row["notes"]["rate_mc_se"] + 1e-3, (row["rate"], closed_form)
    assert row["notes"]["rate_mc_se"] > 0
    assert abs(-row["neg_log_px"] - iwae) < 0.5, "IWAE-200 with the same model and prior, other draws"
    assert row["neg_elbo"] == pytest.approx(row["distortion"] + row["rate"], abs=1e-3)
    with torch.no_grad():
        model.prior_mu.add_(2.0)  # a prior far from q: the rate must grow
    assert evaluate_model(spec, model, None, X, None, budget)["rate"] > row["rate"] + 10


def test_vamp_prior_starts_at_training_images(monkeypatch):
    """The VampPrior's pseudo-inputs are initialised from training images (not left at grey noise) before fit."""
    import tools.results as results

    seen = {}

    def fake_fit(model, X, **kwargs):
        seen["pseudo"] = model.pseudo_inputs().detach().clone()

    monkeypatch.setattr(results, "fit", fake_fit)
    X = load_test(300)
    spec = next(s for s in MODELS if s.cli_key == "vamp")
    results.train(spec, X, None, QUICK)
    shrunk = 0.05 + 0.9 * X  # init_pseudo_inputs maps pixels into [0.05, 0.95]
    nearest = torch.cdist(seen["pseudo"].double(), shrunk.double()).min(1).values  # [K]
    assert nearest.max() < 1e-3, "every pseudo-input is a training image"


def test_hierarchical_row_warms_up_over_all_epochs_and_reports_both_layers(monkeypatch, rows):
    import tools.results as results

    seen = {}
    monkeypatch.setattr(results, "fit", lambda model, X, **kwargs: seen.update(kwargs))
    spec = next(s for s in MODELS if s.cli_key == "hierarchical")
    results.train(spec, load_test(10), None, Budget(num_epochs=7))
    assert seen["kl_warmup_epochs"] == 7 and seen["num_epochs"] == 7
    assert seen["objective"].__name__ == "hierarchical_elbo"
    assert all("kl_warmup_epochs" not in s.fit_kwargs for s in MODELS)
    row = rows["Hierarchical VAE"]
    notes = row["notes"]
    assert row["rate"] == pytest.approx(notes["rate_z1"] + notes["rate_z2"], abs=1e-3)
    assert len(notes["activity_z2"]) == 8 and len(notes["active_units_z2_per_seed"]) == QUICK.seeds
    assert notes["active_units_z2_per_seed"][0] == sum(a > 0.01 for a in notes["activity_z2"])


def test_diffusion_row_reports_its_full_elbo_as_its_bound(rows):
    """The diffusion row's bound is its (T + 1)-term ELBO: the same number in both columns, R above the prior KL."""
    from tools.results import _diffusion_elbo
    from vae_lesson.theory.diffusion_toy import prior_kl
    from vae_lesson.variants.diffusion import diffusion_bound

    row = rows["Diffusion, T = 10"]
    assert row["neg_log_px"] == row["neg_elbo"] and row["iwae_gain"] == 0.0
    assert row["active_units"] is None and row["notes"]["num_steps"] == 10
    spec = next(s for s in MODELS if s.cli_key == "diffusion")
    model = spec.build().eval()
    X = load_test(40)
    terms = _diffusion_elbo(model, X, 3, torch.Generator().manual_seed(0))
    once = diffusion_bound(model, X, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(terms.elbo, terms.reconstruction - terms.kl)
    assert (terms.kl > prior_kl(model.schedule, X).to(terms.kl.dtype)).all(), "R includes 9 step KLs >= 0"
    # the mean of 3 draws estimates the same ELBO as one draw: within the one-draw spread
    assert abs(terms.elbo.mean() - once.elbo.mean()) < 4 * once.elbo.std() / math.sqrt(40) + 1.0


def test_markdown_labels_the_new_rows(quick):
    table = to_markdown(quick)
    lines = {line.split(" | ")[0][2:]: line for line in table.splitlines() if line.startswith("| ")}
    assert "R by Monte Carlo" in lines["VampPrior VAE"] and "learned log p(z) in the weights" in lines["MoG-prior VAE"]
    assert "for z1 +" in lines["Hierarchical VAE"] and "z2:" in lines["Hierarchical VAE"]
    assert "no IWAE" in lines["Diffusion, T = 10"] and "0 (the bound is the ELBO)" in lines["Diffusion, T = 10"]
    for note in ("**VampPrior and MoG-prior VAEs**", "**Hierarchical VAE**", "**Diffusion, T = 10**"):
        assert note in table

