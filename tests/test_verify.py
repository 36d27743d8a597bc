"""Every registered model's counts against its paper (the suite's `cnnlab verify`)."""

import pytest

import cnnlab
from cnnlab.profile.verify import verify


@pytest.fixture(scope="session")
def checks():
    """Every check, computed once per test run (not at import: collection stays fast)."""
    return verify()


def test_every_figure_matches(checks):
    bad = [c.to_dict() for c in checks if not c.ok]
    assert not bad, bad


@pytest.mark.parametrize("name", [n for n in cnnlab.list_models()
                                  if cnnlab.model_info(n).references])
def test_model_is_checked(name, checks):
    assert any(c.model == name for c in checks)


def test_discrepancies_carry_a_reason(checks):
    for c in checks:
        if not c.paper.matches(c.measured):
            assert c.note, f"{c.model} {c.metric} differs from its paper without a note"


def test_exact_counts_from_the_brief():
    assert cnnlab.profile("lenet5").params == 60_000
    assert cnnlab.profile("alexnet").params == 61_100_840
    assert cnnlab.profile("alexnet_grouped").params == 60_965_224
    assert cnnlab.profile("lenet_300_100").params == 266_610
    assert cnnlab.profile("lenet5_caffe").params == 431_080
