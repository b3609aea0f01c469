"""Every fenced Python block of README.md and of the docs' getting-started page runs as written.

Each block is run alone, as a ``__main__`` script in a fresh interpreter and an empty folder, so a block that uses
a name it does not define, or that needs ``if __name__ == "__main__":``, fails here as it would for a reader who
pastes it into a file. Sizes are shrunk for the suite: every integer literal of at least 1000 in the block's code is
divided by 100 (``10_000`` members become 100, ``100_000`` steps 1000), which keeps their ratios (a transient
shorter than the run, ``t0=-steps``) and leaves every other token as written.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import textwrap
import tokenize

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHRINK = 100


def markdown_blocks(path):
    """The fenced ```python blocks of a Markdown file, as (first line number, code)."""
    text = open(path, encoding="utf-8").read()
    return [(text[:m.start()].count("\n") + 2, m.group(1))
            for m in re.finditer(r"^```python\n(.*?)^```", text, flags=re.M | re.S)]


def rst_blocks(path):
    """The ``.. code-block:: python`` blocks of a reStructuredText file, as (first line number, code)."""
    lines = open(path, encoding="utf-8").read().splitlines()
    out = []
    i = 0
    while i < len(lines):
        if re.match(r"\s*\.\. code-block:: python\s*$", lines[i]):
            start = i + 1
            j = start
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith(" ") or lines[j].startswith(":")):
                j += 1
            body = [ln for ln in lines[start:j] if not ln.lstrip().startswith(":")]
            out.append((start + 1, textwrap.dedent("\n".join(body)).strip("\n") + "\n"))
            i = j
        else:
            i += 1
    return out


def shrink(code, factor=SHRINK):
    """``code`` with every integer literal >= 1000 divided by ``factor`` (at least 10), all else as written."""
    lines = code.splitlines(keepends=True)
    for tok in reversed(list(tokenize.generate_tokens(io.StringIO(code).readline))):
        s = tok.string
        if tok.type == tokenize.NUMBER and re.fullmatch(r"[0-9_]+", s) and int(s.replace("_", "")) >= 1000:
            (row, c0), (_, c1) = tok.start, tok.end
            ln = lines[row - 1]
            lines[row - 1] = ln[:c0] + str(max(int(s.replace("_", "")) // factor, 10)) + ln[c1:]
    return "".join(lines)


BLOCKS = [(f"README.md:{line}", code) for line, code in markdown_blocks(os.path.join(ROOT, "README.md"))]
BLOCKS += [(f"docs/{page}:{line}", code) for page in ("getting_started.rst", "training.rst")
           for line, code in rst_blocks(os.path.join(ROOT, "docs", page))]


def test_the_blocks_are_found():
    names = [name for name, _ in BLOCKS]
    assert sum(n.startswith("README") for n in names) >= 3, names
    assert sum(n.startswith("docs/getting_started") for n in names) >= 1, names


def test_shrink_divides_sizes_only():
    assert shrink("f(x, 10_000, t0=-10_000, k=10, eta=0.05, n=1000, tol=1e-6)  # 10_000\n") == \
        "f(x, 100, t0=-100, k=10, eta=0.05, n=10, tol=1e-6)  # 10_000\n"


@pytest.mark.parametrize("name,code", BLOCKS, ids=[name for name, _ in BLOCKS])
def test_block_runs_as_written(name, code, tmp_path):
    if "dask" in code or "distributed" in code:
        pytest.importorskip("distributed")
    live = "\n".join(ln.split("#")[0] for ln in code.splitlines())
    if re.search(r"Client\(\s*[\"']tcp://scheduler", live):
        pytest.skip("the block connects to a placeholder scheduler address (tcp://scheduler:...): it cannot run")
    script = tmp_path / "block.py"
    script.write_text(shrink(code), encoding="utf-8")
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, f"{name} failed:\n{shrink(code)}\n--- stderr ---\n{proc.stderr[-4000:]}"
