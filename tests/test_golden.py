"""Seeded golden values (auto_LiRPA style): a regression guard, compared with rtol 1e-5.

Regenerate after an intended change with ``ATTRBOUND_REGEN_GOLDEN=1 make test PYTEST_ARGS=tests/test_golden.py``
and say why in the commit.
"""

import json
import os
from pathlib import Path

import pytest
import torch

from attrbound_lite.bounds import attribution_bound
from attrbound_lite.models import MnistCNN

GOLDEN = Path(__file__).parent / "golden" / "bounds.json"
CASES = [("saliency", "l2"), ("input_x_gradient", "l2"), ("integrated_gradients", "l2"), ("saliency", "linf")]


def _compute(attribution, norm):
    torch.manual_seed(0)
    model = MnistCNN(activation="softplus", beta=10.0, width=0.25, pool="avg").double().eval()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    options = {"n_steps": 5} if attribution == "integrated_gradients" else {}
    bound = attribution_bound(model, x, 0.05, norm=norm, attribution=attribution, tol=1e-10, max_iter=300, **options)
    fields = ["sigma_max", "attribution_norm", "euclidean", "cosine"]
    if norm == "linf":
        fields += ["linf_abs_rowsum", "linf_lower"]
    return {f: getattr(bound, f).tolist() for f in fields}


@pytest.mark.parametrize("attribution, norm", CASES)
def test_golden_values(attribution, norm):
    key = f"{attribution}-{norm}"
    got = _compute(attribution, norm)
    if os.environ.get("ATTRBOUND_REGEN_GOLDEN") == "1":
        stored = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        stored[key] = got
        GOLDEN.write_text(json.dumps(stored, indent=1, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())[key]
    assert expected.keys() == got.keys()
    for field, values in expected.items():
        torch.testing.assert_close(torch.tensor(got[field]), torch.tensor(values), rtol=1e-5, atol=0,
                                   msg=f"{key} {field} changed")
