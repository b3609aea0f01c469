"""Smoke tests of the example scripts that are cheap enough for the suite (tiny sizes)."""

import os
import runpy
import sys

import pytest

import rds

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def run_example(name, args, monkeypatch):
    monkeypatch.setattr(sys, "argv", [name] + args)
    monkeypatch.syspath_prepend(EXAMPLES)
    runpy.run_path(os.path.join(EXAMPLES, name), run_name="__main__")


def test_custom_map_example_runs_and_saves(tmp_path, monkeypatch, capsys):
    run_example("custom_map.py", ["--out", str(tmp_path), "--members", "64", "--steps", "300"], monkeypatch)
    out = capsys.readouterr().out
    assert "reloaded identically" in out and "Lyapunov exponent" in out
    ds = rds.io.load(tmp_path / "circle_trajectory.nc")
    assert ds.state.dims == ("time", "member", "var")
    assert (tmp_path / "circle_map.png").exists()


def test_sgd_stability_example_runs_and_saves(tmp_path, monkeypatch, capsys):
    run_example("sgd_stability.py", ["--out", str(tmp_path), "--scale", "tiny"], monkeypatch)
    out = capsys.readouterr().out
    assert "GD sharpness bound" in out and "pullback" in out
    ds = rds.io.load(tmp_path / "sgd_stability_grid.nc")
    assert ds.exponents.dims == ("batch", "eta", "exponent")
    assert (tmp_path / "sgd_stability.png").exists()


@pytest.mark.parametrize("scale", ["bogus"])
def test_umbrella_example_rejects_unknown_scale(scale, monkeypatch):
    with pytest.raises(SystemExit):
        run_example("noise_induced_degeneration.py", ["--scale", scale], monkeypatch)
