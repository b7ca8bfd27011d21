"""vae_lesson.results: the comparison table, checked in its quick configuration (1 epoch on 256 images, k = 5)."""

import json
import math

import pytest

from vae_lesson.results import KINDS, MODELS, QUICK, Budget, Spec, main, run, to_markdown, train, write

NUMBERS = ("parameters", "train_seconds", "eval_seconds", "neg_elbo", "distortion", "rate", "neg_elbo_subset",
           "neg_log_px", "iwae_gain", "bits_per_dim", "bits_per_dim_elbo", "active_units")
MC_NOISE = 1.0  # nats: the ELBO (2 draws per image) and IWAE-5 on 20 images are Monte Carlo estimates


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
                                                              "distortion")) or (row["kind"] == "vq" and
                                                                                 key == "active_units")
            assert (row[key] is None) == undefined, (row["name"], key)
            if row[key] is not None:
                assert math.isfinite(row[key]) and row[key] >= 0, (row["name"], key, row[key])
        assert row["parameters"] > 0 and row["train_seconds"] > 0


def test_iwae_is_the_tighter_bound_and_the_elbo_is_distortion_plus_rate(quick):
    for row in quick["rows"]:
        if row["neg_log_px"] is None:
            continue
        assert row["neg_elbo_subset"] >= row["neg_log_px"] - MC_NOISE, row["name"]
        assert row["iwae_gain"] == pytest.approx(row["neg_elbo_subset"] - row["neg_log_px"])
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


def test_active_units_count_the_activity_above_burdas_threshold(quick):
    for row in quick["rows"]:
        if row["active_units"] is not None:
            activity = row["notes"]["activity"]  # Var_x mu_j(x), one per latent dimension
            assert len(activity) == 20 and row["active_units"] == sum(a > 0.01 for a in activity), row["name"]


def test_vq_vae_row_is_its_point_mass_bound(rows):
    vq = rows["VQ-VAE"]
    assert vq["iwae_gain"] == 0.0, "a point-mass q makes every importance weight equal: IWAE-k = ELBO"
    uniform_rate = 8 * math.log(32)  # nats, -log of the uniform prior over 32^8 code sequences
    assert vq["notes"]["neg_elbo_uniform_prior"] == pytest.approx(vq["distortion"] + uniform_rate, abs=1e-3)
    assert 1 <= vq["notes"]["perplexity"] <= 32


def test_cvae_reports_both_log_p_x_given_y_and_log_p_x(rows):
    notes = rows["CVAE"]["notes"]
    assert math.isfinite(notes["neg_log_px_marginal"]) and notes["neg_log_px_marginal"] > 0


def test_a_row_does_not_depend_on_the_models_before_it(rows):
    alone = run(QUICK, models=[MODELS[3]])["rows"][0]
    for key in set(NUMBERS) - {"train_seconds", "eval_seconds"}:
        assert alone[key] == rows[MODELS[3].name][key], key


def test_markdown_and_json_files(quick, tmp_path):
    json_path, md_path = write(quick, tmp_path / "out")
    assert json.loads(json_path.read_text()) == json.loads(json.dumps(quick))
    table = md_path.read_text()
    assert table == to_markdown(quick)
    assert f"{quick['meta']['cores']} cores" in table and quick["meta"]["torch"] in table
    for spec in MODELS:
        assert sum(line.startswith(f"| {spec.name} |") for line in table.splitlines()) == 1, spec.name
    ae_row = next(line for line in table.splitlines() if line.startswith("| AE |"))
    assert ae_row.count("n/a") == 5 and "(results.json)" in table


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
    with pytest.raises(ValueError, match="n_iwae"):
        Budget(n_test=10, n_iwae=20)
    with pytest.raises(TypeError, match="budget"):
        run("quick")
    with pytest.raises(ValueError, match="spec.kind"):
        train(Spec("GAN", "not a course model", MODELS[1].build, kind="gan"), None, None, QUICK)
