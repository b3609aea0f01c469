"""The defaults a new user expects: a Box over the system's variables, exponents largest first, parameters under
their names, one dt, clean attrs and error messages in the user's terms."""

import numpy as np
import pytest

import analysis
import rds


def test_box_takes_the_systems_variables_when_omitted():
    red = rds.models.fukumizu_amari_reduced(eta=0.1, sigma2=0.07)
    X = np.random.default_rng(1).uniform(0, 2, (8, 2))
    named = analysis.escape_times(red, X, rds.regions.Box([-2, -2], [2, 2], ("w", "v")), 200, backend="numpy")
    bare = analysis.escape_times(red, X, rds.regions.Box([-2, -2], [2, 2]), 200, backend="numpy")
    np.testing.assert_array_equal(named.escape_time.values, bare.escape_time.values)
    fa = rds.models.fukumizu_amari()
    X, how = rds.sampling.initial_states(rds.regions.Box([-1] * 4, [1] * 4), fa.variables, members=3)
    assert X.shape == (3, 4) and "w1" in how
    with pytest.raises(ValueError, match="need 4 entries"):
        rds.regions.Box([-1] * 3, [1] * 3).bind(fa.variables)


def test_exponents_come_back_largest_first():
    # identity start on diag(0.5, 2): e1 is invariant, so the QR order is (log 0.5, log 2)
    lin = rds.RandomDynamicalSystem(lambda s, xi, p: (0.5 * s[0], 2.0 * s[1]), variables=("x", "y"))
    ds = analysis.lyapunov_spectrum(lin, np.array([1e-3, 1e-3]), 20, backend="numpy")
    np.testing.assert_allclose(ds.exponents.values[0, 0], [np.log(2), np.log(0.5)])
    np.testing.assert_allclose(ds.history.values[0, 0, -1], [np.log(2), np.log(0.5)])
    np.testing.assert_allclose(np.abs(ds.vectors.values[0, 0]), [[0, 1], [1, 0]], atol=1e-12)  # columns follow


def test_reference_attr_and_state_label():
    lin = rds.RandomDynamicalSystem(lambda s, xi, p: (0.5 * s[0],), variables=("x",))
    ds = analysis.lyapunov_spectrum(lin, np.array([0.1]), 5, backend="numpy")
    assert ds.attrs["reference"] == "Benettin et al. (1980)"
    fa = rds.models.fukumizu_amari()
    ref = analysis.lyapunov_spectrum(fa, np.full(4, 0.1), 5, backend="numpy").attrs["reference"]
    assert ref.startswith(fa.attrs["reference"]) and ref.endswith("; Benettin et al. (1980)")
    tr = lin.trajectory(np.array([0.1]), 3, backend="numpy")
    assert "theta" not in tr.state.attrs["long_name"]


def test_params_keep_their_names():
    def henon(s, xi, p):
        return (1.0 - p.a * s[0] * s[0] + s[1] + xi[0], p.b * s[0])
    h = rds.RandomDynamicalSystem(henon, noise=rds.noise.Gaussian(1e-6), variables=("x", "y"),
                                  params={"a": 1.4, "b": 0.3})
    attrs = h.describe()
    assert attrs["param_a"] == 1.4 and attrs["param_b"] == 0.3 and "param_p0" not in attrs
    import pickle
    assert pickle.loads(pickle.dumps(h.params)) == h.params
    # the class pickles by reference (one type in every process: Numba's disk cache matches signatures by it)
    assert pickle.loads(pickle.dumps(type(h.params))) is type(h.params)
    with pytest.raises(ValueError, match="params"):
        rds.RandomDynamicalSystem(henon, variables=("x", "y"), params={"1a": 1.0})


def test_shape_error_names_the_shape_given():
    fa = rds.models.fukumizu_amari()
    with pytest.raises(ValueError, match=r"got shape \(5,\)"):
        analysis.lyapunov_spectrum(fa, np.zeros(5), 10)


def test_one_dt_stated_once():
    w = rds.noise.Wiener(sigma2=0.1, dt=0.01)

    def euler(s, xi, p):
        return (s[0] + p.omega * p.dt + xi[0],)
    assert rds.RandomDynamicalSystem(euler, noise=w, variables=("phi",), params={"omega": 1.0, "dt": 0.01}).dt == 0.01
    assert rds.RandomDynamicalSystem(lambda s, xi, p: (s[0] + xi[0],), noise=w).dt == 0.01
    assert rds.RandomDynamicalSystem(lambda s, xi, p: (0.5 * s[0],)).dt == 1.0
    with pytest.raises(ValueError, match="dt is stated twice"):
        rds.RandomDynamicalSystem(euler, noise=w, variables=("phi",), params={"omega": 1.0, "dt": 0.02})
    with pytest.raises(ValueError, match="dt is stated twice"):
        rds.RandomDynamicalSystem(lambda s, xi, p: (s[0] + xi[0],), noise=w, dt=0.1)
    osc = rds.models.phase_oscillator(omega=1.0, sigma2=0.1, dt=0.01)
    ly = analysis.lyapunov_spectrum(osc, np.array([0.1]), 20, backend="numpy")
    assert ly.attrs["dt"] == 0.01 and ly.exponents.attrs["units"] == "1/time"
    assert ly.time.attrs["units"] == "steps" and ly.elapsed.attrs["units"] == "time"


def test_the_distribution_ships_every_package():
    # `pip install .` (the README's quick start) installed rds without rds/backends: `import rds` failed
    import os
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        listed = set(tomllib.load(f)["tool"]["setuptools"]["packages"])
    found = {os.path.relpath(d, root).replace(os.sep, ".") for top in ("rds", "analysis")
             for d, _, files in os.walk(os.path.join(root, top)) if "__init__.py" in files}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"


def test_plot_functions_return_bare_figures():
    import matplotlib.figure
    import matplotlib.pyplot as plt
    lin = rds.RandomDynamicalSystem(lambda s, xi, p: (0.5 * s[0],), variables=("x",))
    ds = analysis.lyapunov_spectrum(lin, np.array([0.1]), 5, backend="numpy")
    before = plt.get_fignums()
    fig = analysis.plot_exponent_history(ds)
    assert type(fig) is matplotlib.figure.Figure and plt.get_fignums() == before  # nothing for pyplot to show
    fig2, ax = plt.subplots()
    assert analysis.plot_exponent_history(ds, ax=ax) is fig2
    plt.close(fig2)


def test_backend_none_compiles_a_long_run_on_a_cold_cache(monkeypatch, tmp_path):
    # the reproducer: a logistic map's exponents, 8 members x 4 realisations x 10^5 steps, went to NumPy (9.6 s)
    # where Numba takes 3.6 s including compilation and 0.1 s warm
    from rds.backends import Plan, choose, estimated_seconds
    monkeypatch.setenv("RDS_CACHE_DIR", str(tmp_path / "kernels"))  # nothing on disk

    def logistic(state, xi, params):
        x, = state
        return (params[0] * x * (1.0 - x) + xi[0] + 0.0 * 271828.0,)  # (a map no other test compiled)
    s = rds.RandomDynamicalSystem(logistic, noise=rds.noise.Gaussian(1e-8), variables=("x",), params=(3.7,))
    X = np.full((8, 1), 0.3)
    plan = Plan("tangent", 8, 100_000, k=1, repeats=4)
    assert estimated_seconds(s, "numba", plan) < 5.0  # compilation of a 1-variable tangent kernel: ~2 s
    assert choose(s, None, X, plan) == "numba"
    short = Plan("evolve", 8, 1000)
    assert choose(s, None, X, short) == "numpy"  # not worth compiling


def test_time_like_outputs_state_their_unit():
    osc = rds.models.phase_oscillator(omega=1.0, sigma2=0.1, dt=0.01)
    esc = analysis.escape_times(osc, np.full((4, 1), 0.1), rds.regions.Box([-1.0], [1.0]), 50, backend="numpy")
    assert esc.attrs["dt"] == 0.01
    for name in ("escape_time", "restricted_mean", "median", "t"):
        assert esc[name].attrs["units"] == "steps", name
    tr = osc.trajectory(np.array([0.1]), 5, backend="numpy")
    assert tr.time.attrs["units"] == "steps" and tr.attrs["dt"] == 0.01


def test_given_tangent_vectors_keep_their_order():
    # columns of a given tangent basis mean something (transverse_exponents: transverse directions first)
    lin = rds.RandomDynamicalSystem(lambda s, xi, p: (0.5 * s[0], 2.0 * s[1]), variables=("x", "y"))
    ds = analysis.lyapunov_spectrum(lin, np.array([1e-3, 1e-3]), 20, tangent=np.eye(2), backend="numpy")
    np.testing.assert_allclose(ds.exponents.values[0, 0], [np.log(0.5), np.log(2)])
