"""Instance paths -> the paper's Table II components (asic/components.py)."""

import pytest

from eie.asic.components import COMPONENTS, component_of, pe_index


@pytest.mark.parametrize("path,component", [
    ("array/pe0/spmat", "Spmat"), ("array/pe12/ptr_even", "pointers"), ("array/pe1/ptr_odd", "pointers"),
    ("array/pe3/codebooks", "codebook"), ("array/pe3/codebook_bias", "codebook"), ("array/pe2/bias", "bias"),
    ("array/pe0/act_rf", "activation RFs"), ("array/pe0/accumulators", "accumulators"),
    ("array/pe0/activation_queue", "queue"), ("array/pe7/column_buffer", "column buffer"),
    ("array/pe0", "arithmetic"), ("array/ccu", "CCU"), ("array/ccu/layer_table", "CCU"),
    ("array/ccu/lnzd", "LNZD"), ("array/ccu/lnzd/node_l1_3", "LNZD"), ("array", "top"), ("", "top"),
    ("response_fifo", "top"),
])
def test_component_of(path, component):
    assert component_of(path) == component and component in COMPONENTS


def test_unknown_pe_block_is_named():
    with pytest.raises(ValueError, match="unknown PE block 'mystery'"):
        component_of("array/pe0/mystery")


def test_pe_index():
    assert pe_index("array/pe10/spmat") == 10 and pe_index("array/pe3") == 3
    assert pe_index("array/ccu") is None and pe_index("array/peek") is None
