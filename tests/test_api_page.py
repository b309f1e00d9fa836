"""The API page of the book (book/api.md) runs as printed: every Python block is executed, in its own namespace."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
import torch

PAGE = Path(__file__).resolve().parents[1] / "book" / "api.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)


def test_the_page_has_a_block_per_task():
    assert len(BLOCKS) == 7


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_every_block_runs_as_printed(code):
    torch.manual_seed(0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(PAGE), "exec"), {"__name__": "api_page"})  # noqa: S102 (the page's own code)
    assert out.getvalue().strip(), "every block prints what it computed"
