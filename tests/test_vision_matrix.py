"""Every vision architecture of the installed transformers with an image processor (see
`vision_matrix.py`) ends shown, its capture equal to `output_attentions` and its layout accounting
for every token, or refused with its reason: never an error of another kind, never a wrong grid."""

from __future__ import annotations

import pytest
from vision_matrix import outcome, vision_families


@pytest.mark.parametrize("family", vision_families())
def test_shown_or_refused_with_the_reason(family):
    result = outcome(family)  # a shown grid is checked against the model's own attention in there
    if result.kind == "not built":
        pytest.skip(f"no small {family} model here: {result.detail}")
    assert result.kind in ("shown", "refused")
    if result.kind == "refused":
        assert len(result.detail) > 40, result.detail  # a reason, not a bare error
