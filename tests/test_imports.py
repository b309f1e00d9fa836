"""The core package needs torch, numpy and pandas, not the book's plotting libraries (the ``book`` extra).

Each check runs in a fresh interpreter in which matplotlib and seaborn cannot be imported: a
``sys.meta_path`` finder installed before anything else refuses them and their submodules.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent("""
    import sys

    class _NoPlotting:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("matplotlib", "seaborn"):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoPlotting())
""")


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)


def test_core_api_imports_without_matplotlib_and_seaborn():
    proc = _run("""
        import attrbound_lite
        import attrbound_lite.attacks, attrbound_lite.attributions, attrbound_lite.bounds, attrbound_lite.metrics
        import attrbound_lite.cli
        from attrbound_lite import attribution_bound
        from attrbound_lite.cli import _parser
        _parser()  # registers every subcommand, the book's included
        import attrbound_lite.book  # the runner: light
        heavy = sorted({m.split(".")[0] for m in sys.modules} & {"matplotlib", "seaborn", "papermill", "myst_nb"})
        assert not heavy, f"importing the core and the CLI imported {heavy}"
        print("ok")
    """)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]


def test_book_style_without_matplotlib_names_the_book_extra():
    proc = _run("""
        try:
            import attrbound_lite.book.style
        except ImportError as err:
            print("refused:", err)
        else:
            raise SystemExit("attrbound_lite.book.style imported without matplotlib")
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "refused:" in proc.stdout and "pip install 'attrbound-lite[book]'" in proc.stdout, proc.stdout
