"""GPU benchmark: one SGD training step of the B3 MLP with mode="cuda" (and PyTorch).

float32 784-256-256-10, ReLU, softmax cross-entropy, batch 128, SGD through updates:
the graph of tests/benchmarks/bench_b3_mlp.py. The first step is checked against that
file's NumPy reference, then the median milliseconds per step are printed, for
mode="cuda" and, when it is importable and sees the GPU, for PyTorch on the GPU (eager,
the loss read on the host at every step, as theanine's step returns it).

Run from the repository root: ``python3 tests/gpu/bench_mlp.py``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

from tests.benchmarks.bench_b3_mlp import (BATCH, LR, SIZES, build_theanine_step,  # noqa: E402
                                           init_params, make_data, numpy_step)


def median_ms(step, sync=lambda: None, target_s=0.3, repeat=7):
    """Median over ``repeat`` runs of the mean milliseconds per ``step()``."""
    for _ in range(3):
        step()
    sync()
    t0 = time.perf_counter()
    step()
    sync()
    number = max(1, int(target_s / max(time.perf_counter() - t0, 1e-6)))
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        sync()
        times.append((time.perf_counter() - t0) / number * 1e3)
    return statistics.median(times)


def check(name, got, want, rtol=1e-3, atol=2e-5):
    if not np.allclose(got, want, rtol=rtol, atol=atol):
        raise AssertionError(f"{name}: largest difference {np.max(np.abs(np.asarray(got) - want))}")


def bench_theanine(init, X, y, ref_loss, ref_params):
    t0 = time.perf_counter()
    train, shared, form = build_theanine_step(init, "cuda")
    compile_s = time.perf_counter() - t0
    loss = train(X, y)
    check("theanine[cuda] loss", loss, ref_loss, 1e-4, 1e-5)
    for k, (s, want) in enumerate(zip(shared, ref_params)):
        check(f"theanine[cuda] param {k}", s.get_value(), want)
    fallbacks = sorted({str(n.op) for n in train.fallbacks})
    print(f"theanine[cuda]: {len(train.kernels)} kernels, compile {compile_s:.2f} s "
          f"(cached after the first run), cost form {form}")
    print(f"theanine[cuda]: ops on the host: {', '.join(fallbacks) or 'none'}")
    ms = median_ms(lambda: train(X, y))
    print(f"theanine[cuda]: {ms:.3f} ms per step (median)")
    return ms


def bench_torch(init, X, y, ref_loss, ref_params):
    try:
        import torch
    except ImportError:
        print("torch: not installed")
        return None
    if not torch.cuda.is_available():
        print("torch: installed, but it sees no GPU")
        return None
    torch.backends.cuda.matmul.allow_tf32 = False   # float32 products, as theanine's
    F, dev = torch.nn.functional, torch.device("cuda")
    ps = [torch.tensor(p, device=dev, requires_grad=True) for p in init]
    Xt, yt = torch.from_numpy(X).to(dev), torch.from_numpy(y.astype(np.int64)).to(dev)

    def step():
        W1, b1, W2, b2, W3, b3 = ps
        h = F.relu(Xt @ W1 + b1)
        h = F.relu(h @ W2 + b2)
        loss = F.cross_entropy(h @ W3 + b3, yt)
        grads = torch.autograd.grad(loss, ps)
        with torch.no_grad():
            torch._foreach_add_(ps, grads, alpha=-LR)
        return loss.item()

    loss = step()
    check("torch loss", loss, ref_loss, 1e-4, 1e-5)
    for k, (p, want) in enumerate(zip(ps, ref_params)):
        check(f"torch param {k}", p.detach().cpu().numpy(), want)
    ms = median_ms(step, torch.cuda.synchronize)
    print(f"torch {torch.__version__} (cuda, eager): {ms:.3f} ms per step (median)")
    return ms


def main():
    print(f"B3 MLP training step on the GPU: float32 {'-'.join(map(str, SIZES))}, batch {BATCH}, SGD")
    init = init_params()
    X, y = make_data()
    ref_params = [p.copy() for p in init]
    ref_loss = numpy_step(ref_params, X, y)
    ms = bench_theanine(init, X, y, ref_loss, ref_params)
    torch_ms = bench_torch(init, X, y, ref_loss, ref_params)
    if torch_ms:
        print(f"theanine[cuda] / torch time: {ms / torch_ms:.2f}")


if __name__ == "__main__":
    main()
