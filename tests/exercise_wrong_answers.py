"""One plausible wrong answer per exercise, for ``test_exercises.py``: each must make its self-check fail.

Keyed by notebook stem, then exercise number (1, 2, ... in the order the exercise cells appear in the notebook).
A value is the code that replaces the exercise's solution block (a list of codes for a cell with several blocks).
"""

WRONG_ANSWERS: dict[str, dict[int, str | list[str]]] = {
    "00_setup_check": {
        1: "pixels_per_digit_image = X_digits.shape[0]  # the number of images, not of pixels",
        2: "fraction_of_sevens = (y_test == 7).sum().item()  # a count, not a fraction",
    },
    "01_autoencoder": {
        1: """z_fitted = torch.randn(1000, 16, generator=generator)  # N(0, I) again, not fitted to the codes
samples_fitted = decode(ae_16d, z_fitted)
_, agreement_fitted = yardsticks(samples_fitted)""",
        2: """m, s = z_train_2d.mean(dim=0), z_train_2d.std(dim=0)
standardized = copy.deepcopy(ae_2d)
with torch.no_grad():  # the encoder is rescaled, but the decoder is not told
    standardized.encoder[-1].weight.div_(s[:, None])
    standardized.encoder[-1].bias.sub_(m).div_(s)""",
    },
    "02_latent_variable_models": {
        1: """z_fold = torch.randn(100_000, 2, generator=generator, dtype=torch.float64)
x_fold = fold.decode(z_fold) + fold.sigma * torch.randn(100_000, 2, generator=generator, dtype=torch.float64)
mean_x2_on_paper = -1.0  # forgot E[z2^2] = 1""",
        2: """z_ex2 = torch.randn(1_000_000, 1, 1, generator=generator, dtype=torch.float64)
log_px_mc = torch.logsumexp(model.log_likelihood(x_ex2, z_ex2), dim=0).item()  # a log-sum, not a log-mean""",
        3: """score = {s: log_marginal_quadrature(spiral_model(s), x_data).mean().item() for s in (0.05, 0.1, 0.2)}
penalty_too_small = score[0.1] - score[0.05]
penalty_too_large = score[0.1] - score[0.2]


def predicted_penalty(c):
    return 2 * math.log(c) + (c**-2 - 1)  # twice the thin-band penalty""",
    },
    "03_intractable_posterior": {
        1: """inner = grid_1d[:, 0] < -1.5
prob_inner_turn = post_1d[1][inner].sum().item()  # a sum of densities, not an integral""",
        2: """def weight_second_moment(c, d):
    return (c / (2 * c - 1)) ** d if c > 0.5 else math.inf  # forgot the square root""",
        3: """def effective_sample_size(log_weights):  # upside down: 1 / ESS
    return torch.exp(torch.logsumexp(2 * log_weights, dim=0) - 2 * torch.logsumexp(log_weights, dim=0))


ESS_SAMPLES = 10_000
ess_naive = {}
for d in (1, 2, 10):
    z_prior = torch.randn(ESS_SAMPLES, N_OBS, d, generator=generator, dtype=torch.float64)
    ess_naive[d] = effective_sample_size(results[d]["toy"].log_likelihood(results[d]["x"], z_prior))""",
    },
    "06_vae_on_mnist": {
        1: "beta_exercise = 784  # per pixel, but forgot the batch",
        2: "nats_per_image = 0.15 * 28 * 28 / math.log(2)  # divided where it should multiply",
        3: """z_fitted = torch.randn(1000, 20, generator=generator)  # N(0, I), not fitted to the codes
with torch.no_grad():
    fitted_decodes = torch.sigmoid(autoencoder.decode(z_fitted))
fd_fitted = frechet_distance(X_test, fitted_decodes)""",
    },
    "07_exploring_the_latent_space": {
        1: "midpoint = 0.5 * (z_0 + z_1)  # the straight midpoint, not the spherical one",
        2: """fraction_inside = (mu2.norm(dim=1) < 1).float().mean().item()  # radius 1, not 2
fraction_prior = 1 - math.exp(-2)""",
        3: "viewer.digit.value = int(torch.exp(0.5 * logvar2).prod(dim=1).argmin())  # the narrowest, not the widest",
    },
    "08_evaluating_a_vae": {
        1: """elbo_bits_per_dim = -elbo_test.mean().item() / D  # forgot the log 2
bits_saved = elbo_bits_per_dim - bits_per_dim""",
        2: """strict_counts = {name: active_units(m, X_val, threshold=0.001).count for name, m in models.items()}
lax_counts = {name: active_units(m, X_val, threshold=0.1).count for name, m in models.items()}  # swapped
most_changed = max(models, key=lambda name: lax_counts[name] - strict_counts[name])""",
        3: """worst_index = int(amortization_gap.argmin())  # the smallest gap, not the largest
worst_gap = amortization_gap[worst_index].item()""",
    },
    "09_beta_vae": {
        1: """model_784 = copy.deepcopy(initial)
fit(model_784, X_train, beta=1.0, num_epochs=1, batch_size=CONFIG["batch_size"], lr=CONFIG["lr"],
    generator=generator)  # the summed loss, not the "mean" one
point_784 = rate_distortion(model_784, X_val, n_samples=10, generator=generator)""",
        2: """slopes = [(points[b].rate - points[a].rate) / (points[b].distortion - points[a].distortion)
          for a, b in zip(betas, betas[1:])]  # upside down""",
        3: """with torch.no_grad():
    mu_1, logvar_1 = models[1.0].encode(X_val)
info_50 = rate_decomposition(mu_1[:50], logvar_1[:50], n_samples=4, generator=generator).rate  # the rate, not I
info_500 = rate_decomposition(mu_1, logvar_1, n_samples=4, generator=generator).rate""",
    },
    "10_conditional_vae": {
        1: """iwae_parts, elbo_parts = [], []
with torch.no_grad():
    for c in range(K):
        x_c = X_test[:20]  # the first 20 test images, whatever their label
        iwae_parts.append(iwae_bound(cvae.with_label(c), x_c, k=100, generator=generator))
        elbo_parts.append(conditional_elbo(cvae, x_c, c, n_samples=10, generator=generator).elbo)
iwae_values, elbo_values = torch.cat(iwae_parts), torch.cat(elbo_parts)""",
        2: "sevens = vae.sample(8, generator=generator)  # the unconditional VAE",
        # a probability, not its log
        3: "log_posterior = torch.softmax(scores, dim=1)[torch.arange(len(y_test)), y_test]",
    },
    "11_importance_weighted_training": {
        # the wrong number of training images
        1: """decoder_passes = {f"IWAE k={k}": k * 4000 * CONFIG["num_epochs"] for k in CONFIG["ks"]}""",
        2: """gains = {}
for name in ("VAE (ELBO)", "IWAE k=50"):
    curve_5000 = iwae_curve(models[name], X_eval[:10], (1000, 5000), generator=generator, max_rows=4096)
    gains[name] = curve_5000[1].mean().item()  # the bound L_5000, not the gain
gain_vae, gain_iwae50 = gains["VAE (ELBO)"], gains["IWAE k=50"]""",
        3: """model, x = models["IWAE k=50"], X_test[:1]
params = list(model.parameters())
log_w = iwae_log_weights(model, x, 5, generator=generator)[:, 0]
grad_bound = torch.autograd.grad(torch.logsumexp(log_w, 0) - math.log(5), params, retain_graph=True)
per_sample = [torch.autograd.grad(log_w[i], params, retain_graph=True) for i in range(5)]
grad_weighted = [sum(per_sample[i][p] for i in range(5)) / 5 for p in range(len(params))]  # a plain average""",
    },
    "12_vq_vae": {
        1: """kl_nats = 32 * 32 * math.log2(512)  # bits, not nats
kl_bits = 32 * 32 * 9""",
        2: """exercise_ppl = math.exp(-(0.5 * math.log(0.5) + 0.25 * math.log(0.25)))  # forgot one of the two codes
exercise_dead = 1""",
        3: """revived = copy.deepcopy(broken)  # trained on, without reviving the dead codes first
fit(revived, X_train, num_epochs=1, batch_size=CONFIG["batch_size"], lr=CONFIG["lr"],
    objective=vq_objective(COMMITMENT_COST), generator=generator)
dead_after = int((code_usage(revived.codes(X_train), K) == 0).sum())""",
    },
    "13_convolutional_vae": {
        # the flattened size of 32 channels, not 64
        1: """wide_params = (conv(1, 32) + conv(32, 64) + linear(32 * 7 * 7, 40) + linear(20, 32 * 7 * 7)
               + conv(64, 32) + conv(32, 1))""",
        2: """permuted_vae = copy.deepcopy(mlp_vae)
with torch.no_grad():  # the encoder sees the shuffled pixels, but the decoder still draws them in the old order
    permuted_vae.encoder[0].weight.copy_(mlp_vae.encoder[0].weight[:, perm])""",
    },
    "04_elbo": {
        1: "smallest_gap = -math.log(1 - 0.9**2)  # forgot the 1/2 of (4.10)",
        2: """n = 50_000
z = reparameterize(q1_mu.expand(n, 1, 2), q1_logvar.expand(n, 1, 2), generator=generator)
log_w = (gaussian_log_likelihood(x1, z @ model.W.T + model.b, math.log(SIGMA**2))
         + gaussian_log_likelihood(z, torch.zeros_like(z), torch.zeros_like(z))
         - gaussian_log_likelihood(z, q1_mu, q1_logvar))[:, 0]
elbo_estimate = log_w.mean().item()
elbo_stderr = log_w.std().item()  # the sd of one draw, not of the mean""",
        3: """# the ELBO's direction, KL(q || p), instead of KL(p || q)
reverse_mean_field = kl_gaussians(q1_mu, torch.diag_embed(q1_logvar.exp()), post_mean1, post_cov1).item()
reverse_marginal = kl_gaussians(post_mean1, torch.diag(post_cov1.diagonal())[None], post_mean1, post_cov1).item()""",
    },
    "05_reparameterization_trick": {
        1: "predicted_variance = 4 * ex_sigma2  # forgot to divide by the number of draws",
        2: """def variance_ratio(d, S=16, repeats=200):  # noqa: F811
    mu_d, logvar_d = torch.full((d,), 0.5), torch.zeros(d)
    score = gradient_variance(lambda: score_function_gradient(f, mu_d, logvar_d, S, generator=generator), repeats)
    reparam = gradient_variance(lambda: reparameterized_gradient(f, mu_d, logvar_d, S, generator=generator), repeats)
    return reparam.variance / score.variance  # upside down""",
    },
    "14_decoder_distributions": {
        1: "sigma_ex1 = 0.5 / 2  # beta / 2 is sigma^2, not sigma",
        2: "bpd_ex2, bpd_se_ex2 = mean_and_se(-log_p_ex2 / D_PIXELS)  # nats per dimension, not bits",
        3: """p = X_val[0].double()
floor_ex3 = -(p * p.log() + (1 - p) * (1 - p).log()).sum().item()  # 0 log 0 is NaN here, not 0""",
    },
    "15_learned_priors_and_hierarchy": {
        1: """with torch.no_grad():
    mu_u, logvar_u = models["VampPrior"].vae.encode(models["VampPrior"].pseudo_inputs())
    log_components = -0.5 * ((z_ex1[:, None, :] - mu_u) ** 2 / logvar_u.exp() + logvar_u
                             + math.log(2 * math.pi)).sum(-1)
    log_p_by_hand = torch.logsumexp(log_components, dim=1)  # forgot the weights 1/K""",
        2: """k_ex2 = torch.multinomial(log_weights_vamp.exp(), 20_000, replacement=True, generator=generator)
# std = exp(logvar), not exp(logvar / 2)
z_ex2 = mu_vamp[k_ex2] + torch.exp(logvar_vamp[k_ex2]) * torch.randn(20_000, 20, generator=generator)""",
        3: """vae_ex3, vamp_ex3 = results[SEED]["VAE"], results[SEED]["VampPrior"]
gain_ex3 = (vamp_ex3 - vae_ex3).mean().item()
unpaired_se = math.sqrt((vae_ex3.var() + vamp_ex3.var()).item() / len(vae_ex3))
paired_se = unpaired_se  # treats the two models' numbers as independent""",
    },
    "16_diffusion_as_hierarchical_vae": {
        1: """x_bar = X_train.mean(0, keepdim=True)
snr_all = diffusion.schedule.log_snr.exp()
squared_error = (X_val.double() - x_bar.double()).pow(2).sum(1).mean().item()
ignorant_kls = [(snr_all[t - 1] - snr_all[t]).item() * squared_error
                for t in range(2, diffusion.num_steps + 1)]  # forgot the 1/2""",
        2: """def expected_log_px(T):
    log_px = toy_log_marginal(vp_schedule(T, 5.0, -7.0), p_one)
    return ((1 - p_one) * log_px[0] + p_one * log_px[1]).item()  # the likelihood, not the ELBO


enough_steps = next(T for T in candidates if expected_log_px(T) >= neg_entropy - 0.1)""",
    },
}
