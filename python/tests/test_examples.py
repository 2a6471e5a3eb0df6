"""The documented examples run, and the README shows them as they are."""

import os
import runpy

import numpy as np

HERE = os.path.dirname(__file__)
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def test_quickstart_runs(capsys):
    ns = runpy.run_path(os.path.join(ROOT, "python", "examples", "quickstart.py"))
    q, k, v, out = ns["q"], ns["k"], ns["v"], ns["out"]
    assert np.isfinite(out).all()
    # row 0 sees key 0 only: its output is v[0] of its KV head
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], atol=1e-6)
    assert "flash2" in capsys.readouterr().out


def test_readme_block_equals_the_example():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    example = open(os.path.join(ROOT, "python", "examples", "quickstart.py"), encoding="utf-8").read()
    marker = "<!-- file: python/examples/quickstart.py -->\n```python\n"
    assert marker in readme
    start = readme.index(marker) + len(marker)
    assert readme[start:readme.index("\n```", start) + 1] == example
