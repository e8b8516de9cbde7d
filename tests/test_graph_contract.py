"""One export contract (styletts2/graph_contract.py): export's I/O spec is the contract at the model's
sizes, and the runtime checks sessions against the same names."""
import pytest

from styletts2.export.common import build_random_model, io_spec
from styletts2 import graph_contract
from styletts2.runtime import model_dir


@pytest.mark.parametrize("config", ["gin/model/tiny.gin", "gin/model/tiny_multispeaker.gin"])
def test_export_spec_is_the_contract_at_the_models_sizes(config):
    model = build_random_model(config)
    spec = io_spec(model, steps=5)
    assert set(spec) == set(graph_contract.GRAPH_INPUTS)  # every graph, the style encoder included
    for graph, io in spec.items():
        extra = (graph_contract.MULTISPEAKER_SAMPLER_INPUT,) if model.multispeaker and "sampler" in graph else ()
        assert tuple(t["name"] for t in io["inputs"]) == graph_contract.GRAPH_INPUTS[graph] + extra
        assert tuple(t["name"] for t in io["outputs"]) == graph_contract.GRAPH_OUTPUTS[graph]
    S2 = 2 * model.style_dim
    assert spec["decoder"]["inputs"][2]["shape"] == ["batch", S2]
    assert spec["diffusion_sampler"]["inputs"][2]["shape"] == [4, "batch", 1, S2]


def test_the_runtime_reads_the_same_contract():
    assert model_dir.GRAPH_INPUTS is graph_contract.GRAPH_INPUTS
    assert model_dir.FORMAT_VERSION == graph_contract.FORMAT_VERSION
    assert set(graph_contract.REQUIRED_GRAPHS) < set(graph_contract.GRAPH_INPUTS)
