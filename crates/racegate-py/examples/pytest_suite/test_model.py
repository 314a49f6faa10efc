"""A pytest suite whose GPU tests never overlap, in any process, while the rest stays parallel:

    pytest -n 4 examples/pytest_suite

(racegate's plugin is installed with the package; the default timeout is in pytest.ini.)"""

import pytest

from fake_gpu import FakeGPU

device = FakeGPU(seconds=0.05)


@pytest.mark.racegate("gpu")  # held across setup, call and teardown
@pytest.mark.parametrize("prompt", [b"hello", b"world", b"gate"])
def test_generate(prompt):
    assert device.run(prompt) == prompt.upper()


@pytest.mark.parametrize("n", range(6))
def test_tokenize(n):  # CPU only: runs in parallel with everything
    assert len(str(n)) == 1
