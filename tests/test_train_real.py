"""LeNet-5 on the real Fashion-MNIST: one epoch of Adam reaches at least 85% test accuracy."""
import numpy as np
import pytest

from minidnn import optim
from minidnn.data import DataLoader
from minidnn.models import LeNet5
from minidnn.train import evaluate, fit


@pytest.mark.slow
def test_lenet5_one_epoch_reaches_85_percent(fashion):
    train, test = fashion
    model = LeNet5(seed=0)
    opt = optim.Adam(model.named_parameters(), lr=1e-3)
    history = fit(model, opt, DataLoader(train, batch_size=64, shuffle=True, seed=0), epochs=1,
                  progress=False)
    result = evaluate(model, DataLoader(test, batch_size=1000))
    assert history[0]["train_loss"] < 0.6
    assert result["accuracy"] >= 0.85, result
    assert np.isfinite(result["loss"])
