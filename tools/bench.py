"""Benchmark: the course's training loop against the loops learners write, and against the machine's limit.

    python -m tools.bench                       # full run (a few minutes), writes bench_results.json
    python -m tools.bench --quick               # seconds: a smoke test of the whole pipeline (writes nothing)
    python -m tools.bench --notebooks           # also time every notebook in a fresh kernel
    python -m tools.bench --compile             # also time a torch.compile'd step (needs a C++ compiler)

All in one process, at one thread count (the course's, 1 unless $VAE_LESSON_THREADS says otherwise):

1. **Throughput** of the MNIST VAE (784-400-20: notebook 06's model and pytorch/examples' VAE) for the same
   number of steps at batch 128, trained by ``vae_lesson.fit`` and by two conventional loops:
   (a) pytorch/examples style -- a ``Dataset`` whose ``__getitem__`` turns one stored uint8 image into a float
   tensor, a shuffling ``DataLoader``, a sigmoid + ``binary_cross_entropy`` loss, ``loss.item()`` every step;
   (b) a ``DataLoader`` over a ``TensorDataset`` of float tensors. Runs alternate; the median over repeats is
   reported as samples/second and as ratios. Loop (a) is also run at torch's default thread count.
2. **Ceiling**: the same forward and backward matrix products (same shapes, same FLOPs) as bare ``torch.mm``
   calls into preallocated outputs; ``fit``'s throughput as a fraction of it.
3. **Quality per second**: ``fit`` and loop (a) each train for the same wall-clock budget; test -ELBO and
   IWAE-k in nats on the default test split.
4. **Where the time goes**: a step of ``fit`` timed phase by phase (batch, forward + ELBO, backward, Adam) beside
   the same matmuls bare, so "the rest" is what a step spends outside the matrix products.
5. **Batch size**: ``fit``'s samples/s and fraction of the ceiling at batch 64-512, and the test -ELBO each
   reaches in the same 15 s -- the trade-off behind the notebooks' batch of 128.
6. Optionally, each notebook's execution time in a fresh kernel (as nbval runs it), and a ``torch.compile``'d
   step: its compile time and throughput beside ``fit``'s.

Timings are measurements of one machine, never assertions: ``tests/test_bench.py`` only checks that a tiny
configuration runs and reports well-formed numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from vae_lesson import VAE, _checks, elbo, evaluate, fit, iwae_bound, load_mnist, seed_everything
from vae_lesson.core.seed import default_num_threads
from vae_lesson.core.training import objective_loss, read_step

HIDDEN, LATENT, BATCH, LR = 400, 20, 128, 1e-3


class Uint8Images(Dataset):
    """pytorch/examples style: images stored as uint8, converted to float one at a time in ``__getitem__``."""

    def __init__(self, X: torch.Tensor, y: torch.Tensor):
        self.images = (X * 255).round().to(torch.uint8)  # [n, 784]
        self.labels = y

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i].float().div(255), self.labels[i]


def example_loss(logits, x, mu, logvar):
    """pytorch/examples' VAE loss: BCE on sigmoid outputs, summed, plus the closed-form KL (per batch)."""
    bce = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def conventional_loop(model, loader, num_steps: int | None = None, max_seconds: float | None = None) -> int:
    """The loop learners write: forward, loss, backward, ``loss.item()`` logging, step. Returns samples seen."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    model.train()
    seen, steps, train_loss = 0, 0, 0.0
    started = time.perf_counter()
    while True:
        for x, _ in loader:
            optimizer.zero_grad()
            logits, mu, logvar = model(x)
            loss = example_loss(logits, x, mu, logvar)
            loss.backward()
            train_loss += loss.item()
            optimizer.step()
            seen, steps = seen + x.shape[0], steps + 1
            if (num_steps is not None and steps >= num_steps) or (
                    max_seconds is not None and time.perf_counter() - started >= max_seconds):
                return seen


def matmul_ceiling(num_steps: int, batch: int = BATCH, split: bool = False):
    """Seconds for ``num_steps`` of the VAE step's matrix products alone (forward and backward, same shapes).

    With ``split=True``: ``(forward seconds, backward seconds)``, timed separately.
    """
    dims = [(784, HIDDEN), (HIDDEN, 2 * LATENT), (LATENT, HIDDEN), (HIDDEN, 784)]
    g = torch.Generator().manual_seed(0)
    layers = []
    for i, (n_in, n_out) in enumerate(dims):
        x = torch.randn(batch, n_in, generator=g)
        w = torch.randn(n_in, n_out, generator=g)
        grad_out = torch.randn(batch, n_out, generator=g)
        layers.append((x, w, grad_out, torch.empty(batch, n_out), torch.empty(n_in, n_out),
                       torch.empty(batch, n_in) if i else None))
    forward = backward = 0.0
    for _ in range(num_steps):
        started = time.perf_counter()
        for x, w, _, out, _, _ in layers:
            torch.mm(x, w, out=out)  # forward
        middle = time.perf_counter()
        for x, w, grad_out, _, grad_w, grad_x in reversed(layers):
            torch.mm(x.T, grad_out, out=grad_w)  # weight gradient
            if grad_x is not None:
                torch.mm(grad_out, w.T, out=grad_x)  # input gradient (not needed for the first layer)
        ended = time.perf_counter()
        forward, backward = forward + middle - started, backward + ended - middle
    return (forward, backward) if split else forward + backward


def _fresh_model() -> VAE:
    torch.manual_seed(0)
    return VAE(784, LATENT, hidden_dims=(HIDDEN,))


def measure_throughput(X, y, num_epochs: int, repeats: int, default_threads: int, threads: int) -> dict:
    """Samples/second of each loop for ``num_epochs`` epochs' worth of steps, median over alternating repeats;
    and ``fit``'s ratio to each, the median of the repeats' own ratios (robust to a machine whose speed drifts)."""
    steps = num_epochs * -(-X.shape[0] // BATCH)
    samples: dict[str, list[float]] = {"fit": [], "loop_a": [], "loop_b": [], "loop_a_default_threads": [],
                                       "matmul_ceiling": []}
    # warm-up, not timed: the first torch.optim.Adam of a process imports torch._dynamo (~1.4 s), and the first
    # passes allocate; neither belongs to the steady state a training run spends its time in
    fit(_fresh_model(), X[:2 * BATCH], num_epochs=1, batch_size=BATCH, progress=False)
    conventional_loop(_fresh_model(), DataLoader(TensorDataset(X, y), batch_size=BATCH), num_steps=2)
    for _ in range(repeats):
        g = torch.Generator().manual_seed(0)
        started = time.perf_counter()
        fit(_fresh_model(), X, num_epochs=num_epochs, batch_size=BATCH, lr=LR, generator=g, progress=False)
        samples["fit"].append(num_epochs * X.shape[0] / (time.perf_counter() - started))
        for name, dataset in (("loop_a", Uint8Images(X, y)), ("loop_b", TensorDataset(X, y))):
            loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, generator=torch.Generator().manual_seed(0))
            started = time.perf_counter()
            seen = conventional_loop(_fresh_model(), loader, num_steps=steps)
            samples[name].append(seen / (time.perf_counter() - started))
        torch.set_num_threads(default_threads)
        loader = DataLoader(Uint8Images(X, y), batch_size=BATCH, shuffle=True,
                            generator=torch.Generator().manual_seed(0))
        started = time.perf_counter()
        seen = conventional_loop(_fresh_model(), loader, num_steps=steps)
        samples["loop_a_default_threads"].append(seen / (time.perf_counter() - started))
        torch.set_num_threads(threads)
        samples["matmul_ceiling"].append(steps * BATCH / matmul_ceiling(steps))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    ratios = {f"fit / {name}": statistics.median(f / v for f, v in zip(samples["fit"], values))
              for name, values in samples.items() if name != "fit"}  # paired: each repeat's own ratio
    return medians, ratios


class _OutOfTimeError(Exception):
    """Ends a :func:`fit_for` run: its wall-clock budget is spent."""


def fit_for(model, X, seconds: float, batch_size: int = BATCH) -> int:
    """Train ``model`` with ``fit`` for about ``seconds`` of wall clock; return the epochs begun (the last one partial).

    ``fit`` has no time budget of its own: the objective it calls at every step checks the clock and ends the run
    before the step after the budget, so the model keeps the parameters of its last full step."""
    steps_per_epoch = -(-X.shape[0] // batch_size)
    deadline = time.perf_counter() + seconds
    steps = 0

    def objective(model, x, generator=None):
        nonlocal steps
        if steps and time.perf_counter() >= deadline:
            raise _OutOfTimeError
        steps += 1
        return elbo(model, x, generator=generator)

    try:
        fit(model, X, num_epochs=10_000, batch_size=batch_size, lr=LR, generator=torch.Generator().manual_seed(0),
            progress=False, objective=objective)
    except _OutOfTimeError:
        pass
    model.eval()
    return -(-steps // steps_per_epoch)


def equal_budget(X, y, X_test, seconds: float, k: int, n_iwae: int) -> dict:
    """Train ``fit`` and loop (a) for the same wall-clock budget; test -ELBO and -IWAE-k in nats."""
    results = {}
    for name in ("fit", "loop_a"):
        model = _fresh_model()
        if name == "fit":
            fit_for(model, X, seconds, batch_size=BATCH)
            seen = None
        else:
            loader = DataLoader(Uint8Images(X, y), batch_size=BATCH, shuffle=True,
                                generator=torch.Generator().manual_seed(0))
            seen = conventional_loop(model, loader, max_seconds=seconds)
        model.eval()
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            neg_elbo = -evaluate(model, X_test, generator=g)["elbo"]
            neg_iwae = -iwae_bound(model, X_test[:n_iwae], k, generator=g).mean().item()
        results[name] = {"test_neg_elbo_nats": neg_elbo, f"test_neg_iwae{k}_nats": neg_iwae, "samples_seen": seen}
    return results


def step_phases(X, num_steps: int) -> dict[str, float]:
    """Where a step of ``fit`` goes: its phases timed one by one (mean ms per step), beside the same matmuls bare.

    The step is ``fit``'s own: an ``index_select`` batch, the ELBO (shape checks only, as inside ``fit``), backward,
    the one host sync that reads the loss and the gradients' finiteness, and ``torch.optim.Adam(fused=True)``.
    """
    model, g = _fresh_model(), torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    phases = dict.fromkeys(("batch", "forward + ELBO", "backward", "Adam (incl. the loss check)"), 0.0)
    names = list(phases)
    done = 0
    while done < num_steps:
        order = torch.randperm(X.shape[0], generator=g)
        for start in range(0, X.shape[0] - BATCH + 1, BATCH):
            t0 = time.perf_counter()
            xb = X.index_select(0, order[start:start + BATCH])
            t1 = time.perf_counter()
            with _checks.data_checked_upstream():
                loss = objective_loss(elbo(model, xb, generator=g)).mean()
            t2 = time.perf_counter()
            optimizer.zero_grad()
            loss.backward()
            t3 = time.perf_counter()
            loss_value, grads_ok = read_step(loss, list(model.parameters()))
            if not (math.isfinite(loss_value) and grads_ok):
                raise FloatingPointError(f"the loss ({loss_value}) or a gradient became non-finite at step {done + 1}")
            optimizer.step()
            t4 = time.perf_counter()
            for name, a, b in zip(names, (t0, t1, t2, t3), (t1, t2, t3, t4)):
                phases[name] += b - a
            done += 1
            if done == num_steps:
                break
    forward, backward = matmul_ceiling(num_steps, split=True)
    ms = {name: 1e3 * sec / num_steps for name, sec in phases.items()}
    return {"step_ms": ms, "matmul_ms": {"forward + ELBO": 1e3 * forward / num_steps,
                                          "backward": 1e3 * backward / num_steps},
            "tiny_step_ms": 1e3 * _tiny_step_seconds(num_steps)}


def _tiny_step_seconds(num_steps: int) -> float:
    """Seconds per step of the same loop on an 8-4-2 VAE: no arithmetic to speak of, so this is the Python and
    dispatch overhead (about 40 tensor operations and their autograd nodes) that every step pays."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand(BATCH * 4, 8, generator=g)
    torch.manual_seed(0)
    model = VAE(8, 2, hidden_dims=(4,))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)
    started = None
    for step in range(num_steps + 10):  # the first 10 steps warm up
        if step == 10:
            started = time.perf_counter()
        xb = X.index_select(0, torch.randint(0, X.shape[0], (BATCH,), generator=g))
        with _checks.data_checked_upstream():
            loss = objective_loss(elbo(model, xb, generator=g)).mean()
        optimizer.zero_grad()
        loss.backward()
        read_step(loss, list(model.parameters()))
        optimizer.step()
    return (time.perf_counter() - started) / num_steps


def compiled_step(X, num_steps: int) -> dict[str, float]:
    """``torch.compile`` (inductor; it needs a C++ compiler on CPU) of the same step's forward and loss, the noise
    drawn outside the graph: the compile time, and samples/s beside ``fit`` and the ceiling in this process."""
    model, g = _fresh_model(), torch.Generator().manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, fused=True)

    def loss_fn(xb, eps):  # the ELBO's formulas as bare torch ops: the package's argument checks would break the graph
        mu, logvar = model.encoder(xb).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * eps
        reconstruction = -F.binary_cross_entropy_with_logits(model.decoder(z), xb, reduction="none").sum(-1)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        return -(reconstruction - kl).mean()

    compiled = torch.compile(loss_fn, dynamic=False)
    started = time.perf_counter()
    compiled(X[:BATCH], torch.randn(BATCH, LATENT, generator=g)).backward()  # compiles forward and backward
    compile_seconds = time.perf_counter() - started
    usable = X.shape[0] - X.shape[0] % BATCH  # whole batches only: one shape, one graph
    done, started = 0, time.perf_counter()
    while done < num_steps:
        order = torch.randperm(X.shape[0], generator=g)
        for start in range(0, usable, BATCH):
            loss = compiled(X.index_select(0, order[start:start + BATCH]), torch.randn(BATCH, LATENT, generator=g))
            optimizer.zero_grad()
            loss.backward()
            loss.item()
            optimizer.step()
            done += 1
            if done == num_steps:
                break
    speed = num_steps * BATCH / (time.perf_counter() - started)
    epochs = max(1, round(num_steps * BATCH / X.shape[0]))
    started = time.perf_counter()
    fit(_fresh_model(), X, num_epochs=epochs, batch_size=BATCH, lr=LR, generator=g, progress=False)
    fit_speed = epochs * X.shape[0] / (time.perf_counter() - started)
    ceiling = num_steps * BATCH / matmul_ceiling(num_steps)
    return {"compile_seconds": compile_seconds, "samples_per_second": speed, "fit_samples_per_second": fit_speed,
            "fraction_of_ceiling": speed / ceiling, "fit_fraction_of_ceiling": fit_speed / ceiling}


def batch_size_study(X, X_test, sizes, seconds: float, epochs: int, repeats: int) -> dict[str, dict[str, float]]:
    """Per batch size: ``fit``'s samples/s and its fraction of the ceiling at that size (medians over ``repeats``),
    and the test -ELBO after ``seconds`` of training -- larger batches run closer to the ceiling but take fewer
    steps per second."""
    out = {}
    for size in sizes:
        steps = epochs * -(-X.shape[0] // size)
        speeds, fractions = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            fit(_fresh_model(), X, num_epochs=epochs, batch_size=size, lr=LR,
                generator=torch.Generator().manual_seed(0), progress=False)
            speeds.append(epochs * X.shape[0] / (time.perf_counter() - started))
            fractions.append(speeds[-1] / (steps * size / matmul_ceiling(steps, batch=size)))
        model = _fresh_model()
        epochs_in_budget = fit_for(model, X, seconds, batch_size=size)
        neg_elbo = -evaluate(model, X_test, generator=torch.Generator().manual_seed(1))["elbo"]
        out[str(size)] = {"samples_per_second": statistics.median(speeds),
                          "fraction_of_ceiling": statistics.median(fractions),
                          "epochs_in_budget": epochs_in_budget, "test_neg_elbo_nats": neg_elbo}
    return out


def time_notebooks() -> dict[str, float]:
    from tools.notebook_runner import execute

    paths = sorted(pathlib.Path("notebooks").glob("[0-9]*.ipynb"))
    return {p.name: execute(p, write=False) for p in paths}


def run(quick: bool = False, notebooks: bool = False, budget: float | None = None,
        with_compile: bool = False) -> dict:
    default_threads = torch.get_num_threads()  # what a learner gets before seed_everything
    threads = default_num_threads()
    seed_everything(0, num_threads=threads)
    X, y = load_mnist("train")
    X_test, _ = load_mnist("test")
    if quick:
        X, y, X_test = X[:512], y[:512], X_test[:100]
    throughput, ratios = measure_throughput(X, y, num_epochs=1 if quick else 2, repeats=1 if quick else 7,
                                            default_threads=default_threads, threads=threads)
    seconds = budget if budget is not None else (1.0 if quick else 60.0)
    quality = equal_budget(X, y, X_test, seconds, k=5 if quick else 100, n_iwae=20 if quick else 200)
    phases = step_phases(X, num_steps=4 if quick else 200)
    sizes = batch_size_study(X, X_test, (64, 128, 256, 512) if not quick else (128, 256),
                             seconds=0.5 if quick else 15.0, epochs=1 if quick else 2,
                             repeats=1 if quick else 3)
    result = {
        "machine": {"cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
                    "threads": threads, "torch_default_threads": default_threads},
        "config": {"model": f"784-{HIDDEN}-{LATENT} MLP VAE", "batch_size": BATCH, "lr": LR, "quick": quick,
                   "train_images": X.shape[0], "budget_seconds": seconds,
                   "batch_size_budget_seconds": 0.5 if quick else 15.0},
        "samples_per_second": throughput,
        "ratios": ratios,
        "equal_budget": quality,
        "step_phases": phases,
        "batch_sizes": sizes,
    }
    if with_compile:
        result["compiled"] = compiled_step(X, num_steps=4 if quick else 128)
    if notebooks:
        result["notebook_seconds"] = time_notebooks()
    return result


def table(result: dict) -> str:
    m, c = result["machine"], result["config"]
    lines = [f"{c['model']}, batch {c['batch_size']}, {c['train_images']} images; {m['cores']} cores, "
             f"torch {m['torch']}, {m['threads']} thread(s) (torch default: {m['torch_default_threads']})", "",
             "| training loop | samples/s | fit is ... × faster |", "|---|--:|--:|"]
    names = {"fit": "vae_lesson.fit", "loop_a": "(a) pytorch/examples style (uint8 Dataset + DataLoader)",
             "loop_b": "(b) DataLoader over a TensorDataset",
             "loop_a_default_threads": f"(a) at torch's default {m['torch_default_threads']} threads",
             "matmul_ceiling": "bare matmuls, same shapes (ceiling)"}
    sps, ratios = result["samples_per_second"], result["ratios"]
    for key, label in names.items():
        ratio = 1.0 if key == "fit" else ratios[f"fit / {key}"]
        lines.append(f"| {label} | {sps[key]:,.0f} | {ratio:.2f} |")
    lines += ["", f"fit reaches {100 * ratios['fit / matmul_ceiling']:.0f} % of the matmul ceiling "
              "(ratios: median of each repeat's own ratio).", "",
              f"| same {c['budget_seconds']:g} s budget | test -ELBO (nats) | test -IWAE (nats) |", "|---|--:|--:|"]
    for key, values in result["equal_budget"].items():
        neg_iwae = next(v for k, v in values.items() if k.startswith("test_neg_iwae"))
        lines.append(f"| {names[key]} | {values['test_neg_elbo_nats']:.1f} | {neg_iwae:.1f} |")
    step, bare = result["step_phases"]["step_ms"], result["step_phases"]["matmul_ms"]
    lines += ["", "| where a step of fit goes | ms | of which bare matmuls | the rest |", "|---|--:|--:|--:|"]
    for name, ms in step.items():
        lines.append(f"| {name} | {ms:.2f} | {bare.get(name, 0.0):.2f} | {ms - bare.get(name, 0.0):.2f} |")
    total, total_bare = sum(step.values()), sum(bare.values())
    lines.append(f"| **step** | {total:.2f} | {total_bare:.2f} | {total - total_bare:.2f} |")
    lines += ["", f"The same step on an 8-4-2 VAE (Python and dispatch overhead alone): "
              f"{result['step_phases']['tiny_step_ms']:.2f} ms."]
    if "compiled" in result:
        comp = result["compiled"]
        lines += ["", f"torch.compile of the forward and loss: {comp['compile_seconds']:.1f} s to compile, then "
                  f"{comp['samples_per_second']:,.0f} samples/s ({100 * comp['fraction_of_ceiling']:.0f} % of the "
                  f"ceiling) against fit's {comp['fit_samples_per_second']:,.0f} "
                  f"({100 * comp['fit_fraction_of_ceiling']:.0f} %) in the same process."]
    lines += ["", f"| batch size | fit samples/s | % of ceiling | epochs in {c['batch_size_budget_seconds']:g} s "
              "| test -ELBO after them (nats) |", "|--:|--:|--:|--:|--:|"]
    for size, v in result["batch_sizes"].items():
        lines.append(f"| {size} | {v['samples_per_second']:,.0f} | {100 * v['fraction_of_ceiling']:.0f} | "
                     f"{v['epochs_in_budget']} | {v['test_neg_elbo_nats']:.1f} |")
    if "notebook_seconds" in result:
        lines += ["", "| notebook | seconds |", "|---|--:|"]
        lines += [f"| {name} | {sec:.1f} |" for name, sec in result["notebook_seconds"].items()]
        lines.append(f"| **all** | {sum(result['notebook_seconds'].values()):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny configuration (seconds)")
    parser.add_argument("--notebooks", action="store_true", help="also time every notebook")
    parser.add_argument("--compile", action="store_true", help="also time a torch.compile'd step (needs a C++ "
                        "compiler; about a minute)")
    parser.add_argument("--budget", type=float, default=None, help="seconds for the equal-budget comparison")
    parser.add_argument("--out", default=None, help="where to write the JSON (default: bench_results.json for a "
                        "full run; a --quick run writes only where --out says, never over the committed results)")
    args = parser.parse_args(argv)
    result = run(quick=args.quick, notebooks=args.notebooks, budget=args.budget, with_compile=args.compile)
    out = args.out or (None if args.quick else "bench_results.json")
    if out:
        pathlib.Path(out).write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
