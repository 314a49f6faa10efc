import os

import pytest

# How a user would write each way of keeping GPU tests apart.
pytestmark = {
    "mark": [pytest.mark.racegate("gpu")],
    "xdist_group": [pytest.mark.xdist_group("gpu")],
}.get(os.environ.get("SUITE_MODE", "none"), [])


@pytest.mark.parametrize("i", range(8))
def test_gpu(work, i):
    pass
