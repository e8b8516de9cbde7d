"""The weights' moving average (styletts2/train/weight_average.py) and how the trainer keeps it."""
import pytest
import torch
from torch import nn

from styletts2.checkpoint import torch_load
from styletts2.train.weight_average import WeightAverage
from test_trainer import TOY_MODULES, run_toy, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_the_average_follows_its_closed_form_and_shares_a_tied_weight_once():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 3))
    model[1].weight = nn.Parameter(model[0].weight.detach().t().clone())
    model.tied = model[1]  # the same module twice: its parameters must be averaged once
    average = WeightAverage(decay=0.9)
    average.attach(model)
    average.capture()
    assert len(average.params) == 4
    expected = [p.detach().clone() for p in model.parameters()]
    for n in range(30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        decay = min(0.9, (1 + n) / (10 + n))  # the warm-up, then the decay
        expected = [decay * e + (1 - decay) * p.detach() for e, p in zip(expected, model.parameters())]
        average.update()
    assert average.updates == 30
    for e, s in zip(expected, average.shadow):
        torch.testing.assert_close(s, e, rtol=1e-5, atol=1e-6)

    raw = [p.detach().clone() for p in model.parameters()]
    with average.swapped_in():
        assert all(torch.equal(p, s) for p, s in zip(model.parameters(), average.shadow))
    assert all(torch.equal(p, r) for p, r in zip(model.parameters(), raw)), "the raw weights must come back"

    net = average.averaged_net({"m": model})["m"]
    assert torch.equal(net["tied.weight"], average.shadow[2]) and torch.equal(net["1.weight"], average.shadow[2])
    assert not torch.equal(net["0.bias"], model[0].bias)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_a_decay_outside_zero_to_one_is_refused(decay):
    with pytest.raises(ValueError, match="WeightAverage.decay"):
        WeightAverage(decay=decay)


def test_the_trainer_refuses_a_weight_average_that_is_not_one(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"@WeightAverage\(\) \(with the parentheses\)"):
        run_toy(corpus, tmp_path / "run", weight_average="@WeightAverage")


def _weights(model) -> dict[str, dict[str, torch.Tensor]]:
    return {name: {k: v.detach().clone() for k, v in module.state_dict().items()} for name, module in model.nets.items()}


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        a[m].keys() == b[m].keys() and all(torch.equal(a[m][k], b[m][k]) for k in a[m]) for m in a)


AVERAGE = {"weight_average": "@WeightAverage()"}


def test_training_is_unchanged_and_checkpoints_hold_the_average(corpus, tmp_path):
    plain, plain_result = run_toy(corpus, tmp_path / "plain", epochs=2)
    averaged, result = run_toy(corpus, tmp_path / "averaged", epochs=2, **AVERAGE,
                               extra=("WeightAverage.decay = 0.5", "WeightAverage.validate_raw = True"))
    assert result.iters == plain_result.iters == 6
    # The average does not touch training: the raw weights are the plain run's, bit for bit ...
    assert _equal(_weights(averaged.model), _weights(plain.model))
    saved = torch_load(tmp_path / "averaged" / "last.pth")
    assert _equal(saved["trained_net"], _weights(plain.model))
    assert saved["weight_average"] == {"decay": 0.5, "updates": 6}
    # ... and the checkpoint's model is the average, not the raw weights.
    for module in TOY_MODULES:
        for key, value in saved["net"][module].items():
            if key.endswith("weight") and value.is_floating_point() and value.numel() > 1:
                assert not torch.equal(value, saved["trained_net"][module][key]), key
    # The raw weights' validation is the plain run's; the average's is its own, and picks best.pth.
    plain_val = torch_load(tmp_path / "plain" / "last.pth")["val_loss"]
    assert averaged.last_validation["raw_toy"] == plain_val == plain.last_validation["toy"]
    assert saved["val_loss"] == averaged.last_validation["toy"] != plain_val


def test_resume_restores_the_average_exactly(corpus, tmp_path):
    straight, _ = run_toy(corpus, tmp_path / "straight", epochs=2, **AVERAGE)
    _, half = run_toy(corpus, tmp_path / "resumed", epochs=2, max_steps=4, **AVERAGE)
    assert half.iters == 4
    resumed, result = run_toy(corpus, tmp_path / "resumed", epochs=2, **AVERAGE)
    assert result.iters == 6
    assert _equal(_weights(resumed.model), _weights(straight.model))
    a, b = torch_load(tmp_path / "straight" / "last.pth"), torch_load(tmp_path / "resumed" / "last.pth")
    assert _equal(a["net"], b["net"]) and a["weight_average"] == b["weight_average"]


def test_a_run_without_an_average_resumes_the_raw_weights_of_one_that_had_it(corpus, tmp_path):
    run_toy(corpus, tmp_path / "run", epochs=1, **AVERAGE)
    without, result = run_toy(corpus, tmp_path / "run", epochs=2)
    assert result.iters == 6
    straight, _ = run_toy(corpus, tmp_path / "straight", epochs=2)
    assert _equal(_weights(without.model), _weights(straight.model))


def test_a_stage_release_layout_holds_the_average_as_net_does():
    from styletts2.train.train_state import LoopState, build_training_checkpoint

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.aligner = nn.Linear(2, 2)
            self.nets = {"text_aligner": self.aligner}  # StyleTTS2.nets is a plain dict of its modules

    class ReleasingStage:  # as stage 0's aligner: its weights again under ['model']
        def release_entries(self):
            return {"model": model.nets["text_aligner"].state_dict()}

        def state_dict(self):
            return {}

    model = Model()
    average = WeightAverage()
    average.attach(model)
    average.capture()
    with torch.no_grad():
        model.nets["text_aligner"].weight.add_(1.0)  # the raw weights move away from the average
    state = build_training_checkpoint(model, ReleasingStage(), LoopState(), [{}], average)
    for key, value in state["net"]["text_aligner"].items():
        assert torch.equal(state["model"][key], value), key
    assert not torch.equal(state["model"]["weight"], model.nets["text_aligner"].weight)
    assert torch.equal(state["trained_net"]["text_aligner"]["weight"], model.nets["text_aligner"].weight)
