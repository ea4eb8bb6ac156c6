"""End to end: the lecture's network learns, and the same seed gives the same run."""

import numpy as np

from cnnkit import SGD, CrossEntropyLoss, lecture_network, load_optdigits
from cnnkit.train import accuracy, train_epoch


def run(seed, epochs=2, count=600):
    images, labels = load_optdigits("train")
    images, labels = images[:count], labels[:count]
    rng = np.random.default_rng(seed)
    model = lecture_network((1, 8, 8), 10, rng=rng)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = [
        train_epoch(model, CrossEntropyLoss(), optimizer, images, labels, batch_size=32, rng=rng)
        for _ in range(epochs)
    ]
    return model, history


def test_same_seed_gives_identical_history_and_weights():
    model_a, history_a = run(seed=3)
    model_b, history_b = run(seed=3)
    assert history_a == history_b
    for a, b in zip(model_a.parameters(), model_b.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)


def test_overfits_a_tiny_batch():
    images, labels = load_optdigits("train")
    images, labels = images[:16], labels[:16]
    rng = np.random.default_rng(0)
    model = lecture_network((1, 8, 8), 10, rng=rng)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = CrossEntropyLoss()
    for _ in range(150):
        loss = loss_fn.forward(model.forward(images), labels)
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        optimizer.step()
    assert loss < 0.01
    assert accuracy(model, images, labels) == 1.0


def test_lecture_network_learns_the_digits():
    model, history = run(seed=0, epochs=3, count=1500)
    assert history[-1].loss < history[0].loss
    test_images, test_labels = load_optdigits("test")
    assert accuracy(model, test_images, test_labels) > 0.85
