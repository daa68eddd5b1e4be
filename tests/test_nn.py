"""theanine.nn: layers against NumPy, optimizers against one NumPy step, training,
saving, callbacks, summary and dropout."""

import io

import numpy as np
import pytest

import theanine
import theanine.tensor as T
from theanine import nn
from theanine.nn.progress import ProgressBar

RNG = np.random.default_rng(42)


def model_of(*layers, seed=0):
    return nn.Sequential(list(layers), seed=seed, dtype="float64")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# -- layers against NumPy -----------------------------------------------------------------------


def test_dense_matches_numpy_and_keras_arguments():
    model = model_of(nn.Dense(units=6, kernel_initializer="uniform", activation="relu", input_dim=11),
                     nn.Dense(units=1, kernel_initializer="uniform", activation="sigmoid"))
    model.build()
    w1, b1, w2, b2 = model.get_weights()
    assert w1.shape == (11, 6) and b1.shape == (6,) and w2.shape == (6, 1)
    assert np.all(np.abs(w1) <= 0.05) and np.all(b1 == 0)      # Keras' "uniform": U(-0.05, 0.05)
    b1 = RNG.normal(size=6)
    model.layers[0].set_weights([w1, b1])
    x = RNG.normal(size=(5, 11))
    expected = sigmoid(np.maximum(x @ w1 + b1, 0) @ w2 + b2)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10)


def correlate(x, w, stride=(1, 1), pad=(0, 0)):
    """NCHW cross-correlation, the plain loop way."""
    x = np.pad(x, ((0, 0), (0, 0), (pad[0],) * 2, (pad[1],) * 2))
    n, c, h, wd = x.shape
    f, _, kh, kw = w.shape
    oh, ow = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    out = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, :, i * stride[0]:i * stride[0] + kh, j * stride[1]:j * stride[1] + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


@pytest.mark.parametrize("padding,strides", [("valid", (1, 1)), ("same", (2, 1))])
def test_conv2d_and_pooling_match_numpy(padding, strides):
    conv = nn.Conv2D(4, (3, 3), strides=strides, padding=padding, activation="relu",
                     input_shape=(2, 9, 8))
    model = model_of(conv, nn.MaxPool2D((2, 2)))
    model.build()
    kernel, _ = conv.get_weights()
    bias = RNG.normal(size=4)
    conv.set_weights([kernel, bias])
    x = RNG.normal(size=(3, 2, 9, 8))
    pad = (1, 1) if padding == "same" else (0, 0)
    y = np.maximum(correlate(x, kernel, strides, pad) + bias[None, :, None, None], 0)
    oh, ow = y.shape[2] // 2, y.shape[3] // 2
    pooled = y[:, :, :2 * oh, :2 * ow].reshape(3, 4, oh, 2, ow, 2).max(axis=(3, 5))
    out = model.predict(x)
    assert out.shape[1:] == model.output_shape
    np.testing.assert_allclose(out, pooled, rtol=1e-10)


def test_conv2d_rejects_same_padding_with_even_kernel():
    with pytest.raises(ValueError, match="odd kernel"):
        nn.Conv2D(3, 2, padding="same")


def test_flatten_and_average_pooling_shapes():
    model = model_of(nn.AveragePooling2D(2, input_shape=(3, 5, 4)), nn.Flatten())
    x = RNG.normal(size=(2, 3, 5, 4))
    out = model.predict(x)
    assert model.output_shape == (12,) and out.shape == (2, 12)
    expected = x[:, :, :4, :].reshape(2, 3, 2, 2, 2, 2).mean(axis=(3, 5)).reshape(2, 12)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_batchnorm_train_step_and_inference_match_numpy():
    bn = nn.BatchNorm(momentum=0.9, epsilon=1e-3, input_shape=(4,))
    model = model_of(bn)
    model.compile(nn.sgd(lr=0.0), "mse")
    x = RNG.normal(2.0, 3.0, size=(8, 4))
    gamma, beta = RNG.normal(size=4), RNG.normal(size=4)
    bn.set_weights([gamma, beta, np.zeros(4), np.ones(4)])
    model.train_on_batch(x, np.zeros((8, 4)))
    mean, var = x.mean(0), x.var(0)
    running_mean, running_var = bn.running_mean.get_value(), bn.running_var.get_value()
    np.testing.assert_allclose(running_mean, 0.1 * mean, rtol=1e-10)
    np.testing.assert_allclose(running_var, 0.9 + 0.1 * var * 8 / 7, rtol=1e-10)
    expected = (x - running_mean) / np.sqrt(running_var + 1e-3) * gamma + beta
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10)
    train_out = theanine.function([], model(T.constant(x), training=True))()
    np.testing.assert_allclose(train_out, (x - mean) / np.sqrt(var + 1e-3) * gamma + beta, rtol=1e-8)


def test_embedding_looks_up_rows():
    emb = nn.Embedding(10, 3, input_length=4)
    model = model_of(emb)
    x = RNG.integers(0, 10, size=(2, 4))
    out = model.predict(x)
    assert out.shape == (2, 4, 3) == (2,) + model.output_shape
    np.testing.assert_array_equal(out, emb.embeddings.get_value()[x])


def rnn_numpy(kind, x, kernel, recurrent, bias, units):
    n = units
    h, c = np.zeros((x.shape[0], n)), np.zeros((x.shape[0], n))
    hs = []
    for t in range(x.shape[1]):
        p = x[:, t] @ kernel + bias
        if kind == "SimpleRNN":
            h = np.tanh(p + h @ recurrent)
        elif kind == "LSTM":
            z = p + h @ recurrent
            i, f = sigmoid(z[:, :n]), sigmoid(z[:, n:2 * n])
            g, o = np.tanh(z[:, 2 * n:3 * n]), sigmoid(z[:, 3 * n:])
            c = f * c + i * g
            h = o * np.tanh(c)
        else:
            zr = p[:, :2 * n] + h @ recurrent[:, :2 * n]
            z, r = sigmoid(zr[:, :n]), sigmoid(zr[:, n:])
            h = z * h + (1 - z) * np.tanh(p[:, 2 * n:] + (r * h) @ recurrent[:, 2 * n:])
        hs.append(h)
    return np.stack(hs, axis=1)


@pytest.mark.parametrize("kind", ["SimpleRNN", "LSTM", "GRU"])
def test_recurrent_layers_match_numpy(kind):
    layer = getattr(nn, kind)(5, return_sequences=True, input_shape=(6, 3))
    model = model_of(layer)
    model.build()
    kernel, recurrent, bias = layer.get_weights()
    bias = RNG.normal(size=bias.shape)
    layer.set_weights([kernel, recurrent, bias])
    if kind == "LSTM":
        assert np.all(layer.get_weights()[2][5:10] == bias[5:10])
    x = RNG.normal(size=(4, 6, 3))
    out = model.predict(x)
    assert out.shape == (4, 6, 5) == (4,) + model.output_shape
    np.testing.assert_allclose(out, rnn_numpy(kind, x, kernel, recurrent, bias, 5), rtol=1e-8, atol=1e-12)


def test_lstm_forget_bias_starts_at_one_and_last_state_is_returned():
    layer = nn.LSTM(3, input_shape=(5, 2))
    model = model_of(layer)
    model.build()
    np.testing.assert_array_equal(layer.bias.get_value(), [0] * 3 + [1] * 3 + [0] * 6)
    x = RNG.normal(size=(2, 5, 2))
    expected = rnn_numpy("LSTM", x, *layer.get_weights(), 3)[:, -1]
    assert model.output_shape == (3,)
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-8)


# -- optimizers against a NumPy step ------------------------------------------------------------


def numpy_steps(name, p, grads, **kw):
    p = p.copy()
    state = {"v": np.zeros_like(p), "a": np.zeros_like(p), "m": np.zeros_like(p)}
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            lr, mom, nesterov = kw["lr"], kw["momentum"], kw["nesterov"]
            state["v"] = mom * state["v"] - lr * g
            p += mom * state["v"] - lr * g if nesterov else state["v"]
        elif name == "adagrad":
            state["a"] += g * g
            p -= kw["lr"] * g / (np.sqrt(state["a"]) + 1e-7)
        elif name == "rmsprop":
            state["a"] = kw["rho"] * state["a"] + (1 - kw["rho"]) * g * g
            p -= kw["lr"] * g / (np.sqrt(state["a"]) + 1e-7)
        elif name == "adam":
            b1, b2 = 0.9, 0.999
            state["m"] = b1 * state["m"] + (1 - b1) * g
            state["v"] = b2 * state["v"] + (1 - b2) * g * g
            lr_t = kw["lr"] * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            p -= lr_t * state["m"] / (np.sqrt(state["v"]) + 1e-7)
    return p


@pytest.mark.parametrize("name,kw", [
    ("sgd", dict(lr=0.1, momentum=0.0, nesterov=False)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=False)),
    ("sgd", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("adagrad", dict(lr=0.5)),
    ("rmsprop", dict(lr=0.01, rho=0.8)),
    ("adam", dict(lr=0.01)),
])
def test_optimizer_steps_match_numpy(name, kw):
    p0 = RNG.normal(size=(3, 2))
    p = theanine.shared(p0.copy(), name="p")
    g = T.dmatrix("g")
    step = theanine.function([g], [], updates=getattr(nn.optimizers, name)([p], [g], **kw))
    grads = [RNG.normal(size=(3, 2)) for _ in range(3)]
    for grad in grads:
        step(grad)
    np.testing.assert_allclose(p.get_value(), numpy_steps(name, p0, grads, **kw), rtol=1e-10)


def test_optimizers_by_name_and_configured():
    assert nn.optimizers.get("Adam") is nn.adam
    configured = nn.sgd(lr=0.5)
    p = theanine.shared(np.ones(2), name="p")
    (pair,) = configured([p], [T.ones_like(p)])
    assert pair[0] is p
    np.testing.assert_allclose(theanine.function([], pair[1])(), [0.5, 0.5])
    with pytest.raises(ValueError, match="unknown optimizer"):
        nn.optimizers.get("adamw")
    with pytest.raises(TypeError, match="both"):
        nn.sgd([p])


def test_float32_parameters_stay_float32():
    p = theanine.shared(np.ones(3, dtype="float32"), name="p")
    for opt in (nn.sgd, nn.adagrad, nn.rmsprop, nn.adam):
        updates = opt([p], [T.ones_like(p)], lr=0.1)
        assert all(new.dtype == var.dtype for var, new in updates)


# -- training, evaluation, files ----------------------------------------------------------------


def blobs(n=200):
    x = RNG.normal(size=(n, 4))
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.3 > 0).astype(int)
    return x, y


def small_classifier(seed=0):
    model = model_of(nn.Dense(8, activation="tanh", input_dim=4), nn.Dense(1, activation="sigmoid"),
                     seed=seed)
    model.compile(optimizer=nn.adam(lr=0.02), loss="binary_crossentropy", metrics=["accuracy"])
    return model


def test_fit_reduces_loss_and_reports_history():
    x, y = blobs()
    model = small_classifier()
    before = model.evaluate(x, y)
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0, validation_split=0.25)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history.history["loss"]) == 15 and history.epoch == list(range(15))
    loss, acc = model.evaluate(x, y)
    assert loss < 0.5 * before[0] and acc > 0.9
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_verbose_two_prints_one_line_per_epoch(capsys):
    x, y = blobs(40)
    small_classifier().fit(x, y, epochs=2, verbose=2, validation_data=(x, y))
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("epoch 2/2  loss ")
    assert "accuracy" in lines[0] and "val_loss" in lines[0] and "val_accuracy" in lines[0]


def test_sparse_categorical_training_and_one_training_function():
    x = RNG.normal(size=(150, 2))
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    model = model_of(nn.Dense(16, activation="relu", input_dim=2), nn.Dense(3, activation="softmax"))
    model.compile(optimizer=nn.sgd(lr=0.2, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=15, epochs=20, verbose=0)
    assert model.evaluate(x, y)[1] > 0.85
    assert isinstance(model._function("train"), theanine.Function)
    assert len(model._functions) == 2                    # one training step, one evaluation


def test_save_and_load_round_trip(tmp_path):
    x, y = blobs(64)
    model = model_of(nn.Dense(5, activation="relu", input_dim=4), nn.BatchNorm(), nn.Dropout(0.3),
                     nn.Dense(1, activation="sigmoid"))
    model.compile("rmsprop", "binary_crossentropy")
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = nn.Sequential.load(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)


@pytest.mark.parametrize("layers,x", [
    (lambda: [nn.Embedding(12, 4, input_length=5), nn.SimpleRNN(3, return_sequences=True),
              nn.LSTM(3, return_sequences=True), nn.GRU(2), nn.Dense(2, activation="softmax")],
     RNG.integers(0, 12, (3, 5))),
    (lambda: [nn.Conv2D(2, 3, strides=2, padding="same", input_shape=(1, 7, 7)), nn.AveragePooling2D(2),
              nn.Flatten(), nn.Dense(3)],
     RNG.normal(size=(2, 1, 7, 7))),
])
def test_save_and_load_other_layers(tmp_path, layers, x):
    model = model_of(*layers())
    model.build()
    model.save(tmp_path / "m.npz")
    loaded = nn.load_model(tmp_path / "m.npz")
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_early_stopping_restores_best_weights():
    stopper = nn.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)

    class Recorder:
        stop_training = False
        weights = 0

        def get_weights(self):
            return self.weights

        def set_weights(self, w):
            self.weights = w

    model = Recorder()
    stopper.set_model(model)
    stopper.on_train_begin()
    for epoch, val_loss in enumerate([1.0, 0.5, 0.6, 0.7, 0.4]):
        model.weights = epoch
        stopper.on_epoch_end(epoch, {"val_loss": val_loss})
        if model.stop_training:
            break
    stopper.on_train_end()
    assert stopper.stopped_epoch == 3 and stopper.best_epoch == 1 and model.weights == 1


def test_early_stopping_in_fit():
    x, y = blobs(120)
    model = small_classifier()
    # noisy labels for validation: the validation loss soon stops improving
    vx, vy = RNG.normal(size=(40, 4)), RNG.integers(0, 2, 40)
    stopper = nn.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
    history = model.fit(x, y, epochs=200, batch_size=8, validation_data=(vx, vy), callbacks=[stopper],
                        verbose=0)
    assert stopper.stopped_epoch is not None and len(history.epoch) == stopper.stopped_epoch + 1
    best = min(history.history["val_loss"])
    assert model.evaluate(vx, vy)[0] == pytest.approx(best, rel=1e-6)
    with pytest.raises(KeyError, match="val_accuracy"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[nn.EarlyStopping("val_accuracy")])


def test_summary_text():
    model = model_of(nn.Conv2D(8, 3, activation="relu", input_shape=(1, 10, 10)), nn.MaxPool2D(),
                     nn.Flatten(), nn.Dense(10, activation="softmax"))
    model.build()
    text = model.summary(print_fn=None)
    assert 'Model: "sequential"' in text
    assert "conv2d (Conv2D)" in text and "(None, 8, 8, 8)" in text and "80" in text
    assert "max_pool2d (MaxPool2D)" in text and "(None, 8, 4, 4)" in text
    assert "flatten (Flatten)" in text and "(None, 128)" in text
    assert "dense (Dense)" in text and "1,290" in text
    assert "Total params: 1,370" in text and "Non-trainable params: 0" in text
    bn = model_of(nn.Dense(4, input_dim=2), nn.BatchNorm())
    assert "Non-trainable params: 8" in bn.summary(print_fn=None)


def test_dropout_is_off_in_predict_and_on_in_training():
    dense = nn.Dense(50, input_dim=50, kernel_initializer="ones", use_bias=False)
    model = model_of(dense, nn.Dropout(0.5))
    x = np.ones((20, 50))
    np.testing.assert_array_equal(model.predict(x), np.full((20, 50), 50.0))
    out = theanine.function([], model(T.constant(x), training=True))()
    assert set(np.unique(out)) == {0.0, 100.0}
    assert 0.3 < np.mean(out == 0) < 0.7


def test_frozen_layers_keep_their_weights():
    x, y = blobs(64)
    first = nn.Dense(6, activation="leaky_relu", input_dim=4)
    model = model_of(first, nn.Dense(1, activation="sigmoid"))
    model.compile("sgd", "binary_crossentropy")
    model.fit(x, y, epochs=1, verbose=0)                 # compiles a step that trains both layers
    first.trainable = False
    frozen = first.get_weights()
    last = model.layers[1].get_weights()
    model.fit(x, y, epochs=2, verbose=0)
    assert model.params == model.layers[1].params
    for a, b in zip(frozen, first.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(last[0], model.layers[1].get_weights()[0])
    z = np.array([[-1.0, 2.0, 0.0, 0.0]])
    h = z @ frozen[0] + frozen[1]
    expected = np.where(h > 0, h, 0.2 * h)
    np.testing.assert_allclose(theanine.function([], first(T.constant(z)))(), expected, rtol=1e-12)


def test_losses_and_metrics_by_name():
    y_true, y_pred = T.dmatrix("t"), T.dmatrix("p")
    t = np.array([[1.0], [0.0]])
    p = np.array([[0.8], [0.3]])
    bce = theanine.function([y_true, y_pred], nn.losses.get("binary_crossentropy")(y_true, y_pred))
    np.testing.assert_allclose(bce(t, p), [-np.log(0.8), -np.log(0.7)])
    name, acc = nn.metrics.get("accuracy", "binary_crossentropy")
    assert name == "accuracy" and acc is nn.metrics.binary_accuracy
    assert nn.metrics.get("acc", "sparse_categorical_crossentropy")[1] is nn.metrics.sparse_categorical_accuracy
    with pytest.raises(ValueError, match="unknown loss"):
        nn.losses.get("hinge2")
    with pytest.raises(ValueError, match="unknown metric"):
        nn.metrics.get("auc", "mse")


def test_errors_are_clear():
    with pytest.raises(ValueError, match="input shape is unknown"):
        nn.Sequential([nn.Dense(2)]).build()
    model = nn.Sequential([nn.Dense(2, input_dim=2)])
    model.compile("sgd", "mse")
    with pytest.raises(ValueError, match="2 dimensions"):
        model.fit(np.zeros((3, 2, 2)), np.zeros((3, 2)), verbose=0)
    with pytest.raises(ValueError, match="targets with 2 dimensions"):
        model.fit(np.zeros((3, 2)), np.zeros((3, 2, 1)), verbose=0)
    with pytest.raises(ValueError, match="already a layer named"):
        nn.Sequential([nn.Dense(2, name="a"), nn.Dense(2, name="a")])
    with pytest.raises(RuntimeError, match="compile"):
        nn.Sequential([nn.Dense(1, input_dim=2)]).evaluate(np.zeros((1, 2)), np.zeros(1))


def test_progress_bar_draws_loss_and_speed():
    stream = io.StringIO()
    bar = ProgressBar(0, 3, 100, stream=stream)
    bar.update(40, {"loss": 0.5}, force=True)
    assert "[=========>" in stream.getvalue()
    bar.update(100, {"loss": 0.3})
    bar.finish({"loss": 0.25, "val_loss": 0.5})
    text = stream.getvalue()
    assert "epoch 1/3" in text and "40/100" in text and "100/100" in text
    assert "loss 0.2500  val_loss 0.5000" in text and "[" + "=" * 24 + "]" in text
    assert "samples/s" in text and text.endswith("\n")
    quiet = io.StringIO()
    silent = ProgressBar(0, 1, 10, stream=quiet, enabled=False)
    silent.update(10, {"loss": 1.0}, force=True)
    silent.finish({"loss": 1.0})
    assert quiet.getvalue() == "" and silent.done == 10
