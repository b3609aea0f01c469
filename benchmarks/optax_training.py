"""Training as a random map: rds.models.optax_training against a hand-written jit + scan optax loop.

The model is an MLP 64 → H → 10 (tanh, softmax cross-entropy) on scikit-learn's digits (1797 images), trained by
Adam with minibatches of S = 32; θ = (parameters, Adam's two moments), D = 3 × (75 H + 10):

* ``H = 41``: D ≈ 10⁴ (9255); ``H = 512`` (``--big``): D ≈ 10⁵ (115230).

Measured, on one member (a training run), float64:

* first call: building the system + the first ``evolve`` of 1024 steps (tracing and compiling included; JAX and
  optax already imported), then the first top-10 tangent call (``propagate_tangent``, k = 10, QR every 10 steps,
  100 steps);
* throughput of ``evolve`` (steps/s) against a hand-written ``jax.jit(lax.scan(step))`` of the same optax update
  on the same minibatch indices (pre-generated: the hand loop does not generate noise; rds regenerates it per
  1024-step block from (seed, realisation, t));
* throughput of the top-10 tangents against a hand-written scan of ``jax.jvp`` of the same step on 10 vectors
  (``vmap``), with a Householder QR every 10 steps (``lax.cond``);
* peak memory (resident set) of the process after the tangent runs (D = 10⁵: the D × D Jacobian would be 80 GB;
  k·D tangents are 9 MB).

Ratios are hand time / rds time (≥ 1: rds is as fast), best and median of interleaved repeats, in one run.

Run:  python benchmarks/optax_training.py [--big] [--steps 2048] [--repeats 5]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def setup(H, batch=32):
    import jax
    import jax.numpy as jnp
    import optax
    from sklearn.datasets import load_digits

    import rds

    data = load_digits()
    X, y = data.data / 16.0, data.target.astype(np.int32)

    def loss(p, Xb, yb):
        h = jnp.tanh(Xb @ p["W1"] + p["b1"])
        return optax.softmax_cross_entropy_with_integer_labels(h @ p["W2"] + p["b2"], yb).mean()

    key = jax.random.PRNGKey(0)
    k1, k2 = jax.random.split(key)
    p0 = {"W1": np.asarray(jax.random.normal(k1, (64, H))) / 8.0, "b1": np.zeros(H),
          "W2": np.asarray(jax.random.normal(k2, (H, 10))) / np.sqrt(H), "b2": np.zeros(10)}
    opt = optax.adam(1e-3)
    t = time.perf_counter()
    system = rds.models.optax_training(loss, p0, opt, data=(X, y), batch=batch)
    return system, loss, opt, p0, X, y, time.perf_counter() - t


def hand_written(loss, opt, p0, X, y, idx, k=None, qr_every=10):
    """jit(scan) of the optax step (k=None) or of the step with k jvp tangents and a QR every ``qr_every``."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax.flatten_util import ravel_pytree

    s0 = opt.init(p0)
    theta0, unravel = ravel_pytree((p0, s0))
    Xj, yj = jnp.asarray(X), jnp.asarray(y)

    def step(theta, i):
        p, s = unravel(theta)
        g = jax.grad(loss)(p, Xj[i], yj[i])
        u, s = opt.update(g, s, p)
        return ravel_pytree((optax.apply_updates(p, u), s))[0]

    if k is None:
        run = jax.jit(lambda th, I: jax.lax.scan(lambda c, i: (step(c, i), None), th, I)[0])
        return run, theta0
    V0 = jnp.eye(theta0.size, k)

    def qr(V, lr):
        Q, R = jnp.linalg.qr(V)
        d = jnp.diagonal(R)
        s = jnp.where(d < 0, -1.0, 1.0)
        return Q * s, lr + jnp.log(jnp.abs(d))

    def body(c, inp):
        th, V, lr = c
        n, i = inp
        new, JV = jax.vmap(lambda v: jax.jvp(lambda x: step(x, i), (th,), (v,)), in_axes=1, out_axes=(None, 1))(V)
        JV, lr = jax.lax.cond((n + 1) % qr_every == 0, qr, lambda a, b: (a, b), JV, lr)
        return (new, JV, lr), None

    run = jax.jit(lambda th, I: jax.lax.scan(body, (th, V0, jnp.zeros(k)), (jnp.arange(I.shape[0]), I))[0])
    return run, theta0


def timed(f, *a):
    import jax
    t = time.perf_counter()
    out = f(*a)
    jax.block_until_ready(out)
    return time.perf_counter() - t, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", action="store_true", help="D ≈ 1e5 (H = 512) instead of D ≈ 1e4 (H = 41)")
    ap.add_argument("--steps", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    import jax

    from rds.models.optax_training import training_state
    H = 512 if args.big else 41
    with jax.enable_x64(True):
        jax.numpy.zeros(1).block_until_ready()  # JAX's own start-up, not counted
        system, loss, opt, p0, X, y, t_build = setup(H)
        th0 = training_state(system, p0)
        D = system.nvar
        t = time.perf_counter()
        system.evolve(th0, 1024, seed=0)
        t_first = time.perf_counter() - t + t_build
        V0 = np.eye(D, 10)
        t = time.perf_counter()
        system.propagate_tangent(th0[None], 100, tangent=V0, qr_every=10, seed=0)
        t_first_tan = time.perf_counter() - t
        print(f"D = {D} (H = {H}); first call: evolve(1024 steps) {t_first:.2f} s (build {t_build:.2f} s), "
              f"top-10 tangents (100 steps) {t_first_tan:.2f} s")

        n = args.steps
        idx = system.noise.inner.block(0, 0, 0, n).astype(np.int32) if hasattr(system.noise, "inner") else \
            system.noise.block(0, 0, 0, n).astype(np.int32)
        pj = jax.tree_util.tree_map(jax.numpy.asarray, p0)
        hand_ev, hth0 = hand_written(loss, opt, pj, X, y, idx)
        hand_tan, _ = hand_written(loss, opt, pj, X, y, idx, k=10)
        timed(hand_ev, hth0, idx)
        timed(hand_tan, hth0, idx)
        # the two paths compute the same training run (θ orders differ: compare the parameters' loss)
        rds_state = system.evolve(th0, n, seed=0)
        _, hand_state = timed(hand_ev, hth0, idx)
        from rds.models.optax_training import training_losses
        L = training_losses(system)["train"]
        print(f"same run: train loss rds {float(L(rds_state)):.12f}, hand-written (same indices) — parameters "
              f"max |diff| = {_param_diff(system, rds_state, hand_state, p0, opt):.2e}")
        r_ev, r_tan = [], []
        for _ in range(args.repeats):
            a, _ = timed(hand_ev, hth0, idx)
            t = time.perf_counter()
            system.evolve(th0, n, seed=0)
            b = time.perf_counter() - t
            r_ev.append((a, b))
            a, _ = timed(hand_tan, hth0, idx)
            t = time.perf_counter()
            system.propagate_tangent(th0[None], n, tangent=V0, qr_every=10, seed=0)
            b = time.perf_counter() - t
            r_tan.append((a, b))
        for name, r in (("evolve", r_ev), ("top-10 tangents", r_tan)):
            r = np.array(r)
            best = r[:, 0].min() / r[:, 1].min()
            med = np.median(r[:, 0]) / np.median(r[:, 1])
            print(f"{name:16s} rds {n / r[:, 1].min():9.1f} steps/s   hand {n / r[:, 0].min():9.1f} steps/s   "
                  f"ratio hand/rds best {best:.2f}  median {med:.2f}")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak resident memory {rss:.0f} MB (k·D tangents: {10 * D * 8 / 2**20:.1f} MB; a D × D Jacobian "
              f"would be {D * D * 8 / 2**30:.1f} GB)")


def _param_diff(system, rds_state, hand_state, p0, opt):
    from jax.flatten_util import ravel_pytree
    _, unravel = ravel_pytree((p0, opt.init(p0)))
    p_hand = unravel(hand_state)[0]
    p_rds = system.pytree.unflatten(rds_state).params
    return max(float(np.max(np.abs(np.asarray(p_rds[k]) - np.asarray(p_hand[k])))) for k in p_rds)


if __name__ == "__main__":
    main()
