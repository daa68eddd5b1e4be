"""Sequential: a stack of layers, compiled into theanine functions for training,
evaluation and prediction.

``compile`` records the optimizer, loss and metrics; the functions themselves
are built on first use, when the input shape is known. A training step is one
call of one compiled function that computes the loss and metrics, the
gradients, and applies every update (weights, optimizer state, running
statistics).
"""

from __future__ import annotations

import sys

import numpy as np

import theanine
import theanine.tensor as T
from theanine.configparser import config
from theanine.nn import losses as losses_mod
from theanine.nn import metrics as metrics_mod
from theanine.nn import optimizers as optimizers_mod
from theanine.nn import saving
from theanine.nn.callbacks import Callback, History
from theanine.nn.layers.base import Layer
from theanine.nn.progress import ProgressBar, format_logs
from theanine.nn.summary import summary_text


class Sequential:
    """A linear stack of layers: ``model.add(Dense(...))``, ``model.compile(...)``,
    ``model.fit(X, y)``, ``model.predict(X)``.

    ``seed`` fixes the initial weights and the dropout masks; ``dtype`` is the float
    type of the weights and inputs (default ``theanine.config.floatX`` when the model
    is built).
    """

    def __init__(self, layers=None, name="sequential", seed=None, dtype=None):
        self.name = name
        self.layers = []
        self.seed = seed
        self.dtype = dtype
        self.built = False
        self.stop_training = False
        self.optimizer = self.loss = None
        self.metric_names, self._metric_fns = [], []
        self._functions = {}
        # the order of the training examples in each epoch, reproducible from the seed
        self._shuffle_rng = np.random.default_rng(None if seed is None else seed + 1)
        for layer in layers or []:
            self.add(layer)

    # -- building -----------------------------------------------------------------------------

    def add(self, layer):
        """Append ``layer`` (named after its class if it has no name)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add: expected a Layer, got {type(layer).__name__}")
        if self.built:
            raise RuntimeError("Sequential.add: the model is already built; add layers before "
                               "compiling or training it")
        if layer.name is None:
            layer.name = self._unique_name(_snake(type(layer).__name__))
        elif any(other.name == layer.name for other in self.layers):
            raise ValueError(f"Sequential.add: there is already a layer named {layer.name!r}")
        self.layers.append(layer)

    def _unique_name(self, base):
        taken = {layer.name for layer in self.layers}
        if base not in taken:
            return base
        k = 1
        while f"{base}_{k}" in taken:
            k += 1
        return f"{base}_{k}"

    @property
    def input_shape(self):
        """The shape of one input example (no batch axis), or None if not known yet."""
        return self.layers[0].input_shape if self.layers else None

    def build(self, input_shape=None):
        """Create every layer's weights for examples of ``input_shape`` (default: the first
        layer's ``input_shape``/``input_dim``)."""
        if self.built:
            return
        if not self.layers:
            raise ValueError("Sequential: the model has no layers")
        shape = input_shape or self.input_shape
        if shape is None:
            raise ValueError("Sequential: the input shape is unknown; give the first layer "
                             "input_dim= or input_shape=, or call fit/predict with data")
        rng = np.random.default_rng(self.seed)
        self.dtype = self.dtype or config.floatX
        for layer in self.layers:
            if not layer.built:
                layer.build(tuple(shape), rng, self.dtype)
            shape = layer.compute_output_shape(tuple(shape))
        self.output_shape = tuple(shape)
        self.built = True

    def _ensure_built(self, x):
        if not self.built:
            self.build(self.input_shape or tuple(np.shape(x)[1:]))

    # -- weights ------------------------------------------------------------------------------

    @property
    def params(self):
        """The trainable weights of every layer (frozen layers excluded)."""
        return [p for layer in self.layers for p in layer.trainable_params]

    @property
    def weights(self):
        """Every weight of every layer, trainable or not."""
        return [w for layer in self.layers for w in layer.weights]

    def get_weights(self):
        """Copies of every weight's value, layer by layer."""
        return [w.get_value() for w in self.weights]

    def set_weights(self, values):
        """Replace every weight's value (same order and shapes as ``get_weights``)."""
        values = list(values)
        for layer in self.layers:
            n = len(layer.weights)
            layer.set_weights(values[:n])
            values = values[n:]
        if values:
            raise ValueError(f"Sequential.set_weights: {len(values)} arrays too many")

    def count_params(self):
        """The number of scalars in all the weights."""
        return sum(layer.count_params() for layer in self.layers)

    # -- symbolic graph -----------------------------------------------------------------------

    def __call__(self, x, training=False):
        """The symbolic output for the symbolic batch ``x`` (builds the model if needed)."""
        return self.apply(x, training)[0]

    def apply(self, x, training):
        """(output, updates) for the symbolic batch ``x``: the updates are those of layers
        with running state, applied by a training step."""
        if not self.built:
            self.build()
        updates = []
        for layer in self.layers:
            x, layer_updates = layer.apply(x, training)
            updates += layer_updates
        return x, updates

    def _input_variable(self):
        dtype = self.layers[0].input_dtype(self.dtype)
        return T.tensor(dtype=dtype, shape=(None,) * (len(self.input_shape) + 1), name="x")

    def _target_variable(self, output):
        if losses_mod.is_sparse(self.loss):
            return T.tensor(dtype="int32", shape=(None,) * (output.ndim - 1), name="y")
        return T.tensor(dtype=self.dtype, shape=(None,) * output.ndim, name="y")

    def _function(self, kind):
        """The compiled 'train', 'test' or 'predict' function, built on first use (and the
        training step again when layers were frozen or unfrozen since)."""
        key = (kind, tuple(layer.trainable for layer in self.layers)) if kind == "train" else kind
        if key in self._functions:
            return self._functions[key]
        x = self._input_variable()
        output, layer_updates = self.apply(x, training=kind == "train")
        if kind == "predict":
            fn = theanine.function([x], output, name=f"{self.name}_predict")
        else:
            y = self._target_variable(output)
            loss = T.mean(self._loss_fn(y, output))
            outputs = [loss] + [T.mean(T.cast(m(y, output), self.dtype)) for m in self._metric_fns]
            updates = []
            if kind == "train":
                params = self.params
                grads = theanine.grad(loss, params) if params else []
                updates = list(self.optimizer(params, grads)) + layer_updates
            fn = theanine.function([x, y], outputs, updates=updates, name=f"{self.name}_{kind}")
        self._functions[key] = fn
        return fn

    # -- training -----------------------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the optimizer (a name: 'sgd', 'adagrad', 'rmsprop', 'adam', or a function
        ``(params, grads) -> updates`` from ``theanine.nn.optimizers``), the loss (a name such
        as 'binary_crossentropy', 'categorical_crossentropy',
        'sparse_categorical_crossentropy', 'mse', or a function ``(y_true, y_pred)``) and the
        metrics (e.g. ['accuracy']). Builds the weights when the input shape is known."""
        if loss is None:
            raise ValueError("Sequential.compile: give a loss")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss, self._loss_fn = loss, losses_mod.get(loss)
        named = [metrics_mod.get(m, loss) for m in metrics or []]
        self.metric_names = [name for name, _ in named]
        self._metric_fns = [fn for _, fn in named]
        self._functions = {}
        if self.input_shape is not None:
            self.build()

    def _prepare_x(self, x):
        x = np.asarray(x)
        self._ensure_built(x)
        ndim = len(self.input_shape) + 1
        if x.ndim != ndim:
            raise ValueError(f"{self.name}: expected inputs with {ndim} dimensions "
                             f"(batch + {self.input_shape}), got shape {x.shape}")
        return x.astype(self.layers[0].input_dtype(self.dtype), copy=False)

    def _prepare_y(self, y, n):
        if self.loss is None:
            raise RuntimeError("Sequential: call compile(optimizer, loss) before training or evaluating")
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(f"{self.name}: {n} inputs but {len(y)} targets")
        out_ndim = len(self.output_shape) + 1
        if losses_mod.is_sparse(self.loss):
            if y.ndim != out_ndim - 1:
                raise ValueError(f"{self.name}: expected integer labels with {out_ndim - 1} "
                                 f"dimensions, got shape {y.shape}")
            return y.astype("int32", copy=False)
        y = y.astype(self.dtype, copy=False)
        if y.ndim == out_ndim - 1 and self.output_shape[-1] == 1:
            y = y[..., None]   # (batch,) targets for a (batch, 1) output
        if y.ndim != out_ndim:
            raise ValueError(f"{self.name}: expected targets with {out_ndim} dimensions (batch + "
                             f"{self.output_shape}), got shape {y.shape}")
        return y

    def _log_names(self, prefix=""):
        return [prefix + "loss"] + [prefix + name for name in self.metric_names]

    def _run_batches(self, kind, x, y, batch_size, order=None, on_batch=None):
        """Mean loss and metrics of ``kind`` ('train' or 'test') over the batches of x, y."""
        fn = self._function(kind)
        n = len(x)
        order = np.arange(n) if order is None else order
        totals = np.zeros(1 + len(self._metric_fns))
        done = 0
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            values = fn(x[idx], y[idx])
            totals += np.asarray(values, dtype=np.float64) * len(idx)
            done += len(idx)
            if on_batch is not None:
                on_batch(start // batch_size, done, totals / done)
        return totals / max(done, 1)

    def fit(self, x, y, batch_size=32, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0):
        """Train for ``epochs`` passes over (x, y) in minibatches of ``batch_size``; returns a
        ``History`` whose ``history`` dict lists each epoch's loss and metrics (and val_*
        ones with ``validation_data=(x_val, y_val)`` or ``validation_split``, the fraction
        taken from the end of the data, before shuffling).

        ``verbose``: 'auto' or 1 draws a progress bar on a terminal (stderr) and nothing
        otherwise; 2 prints one line per epoch; 0 is silent. ``callbacks``: a list of
        ``Callback`` (e.g. ``EarlyStopping``)."""
        x = self._prepare_x(x)
        y = self._prepare_y(y, len(x))
        if validation_data is None and validation_split:
            if not 0.0 < validation_split < 1.0:
                raise ValueError(f"fit: validation_split must be in (0, 1), got {validation_split}")
            cut = int(len(x) * (1.0 - validation_split))
            x, y, validation_data = x[:cut], y[:cut], (x[cut:], y[cut:])
        if validation_data is not None:
            vx = self._prepare_x(validation_data[0])
            validation_data = (vx, self._prepare_y(validation_data[1], len(vx)))
        history = History()
        callbacks = [history] + list(callbacks or [])
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(f"fit: callbacks must be Callback objects, got {type(cb).__name__}")
            cb.set_model(self)
        bar_enabled = verbose in ("auto", 1, True) and sys.stderr.isatty()
        self.stop_training = False
        for cb in callbacks:
            cb.on_train_begin()
        names = self._log_names()
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            bar = ProgressBar(epoch, epochs, len(x), enabled=bar_enabled)
            order = self._shuffle_rng.permutation(len(x)) if shuffle else None
            means = self._run_batches("train", x, y, batch_size, order, self._batch_reporter(bar, callbacks))
            logs = dict(zip(names, map(float, means)))
            if validation_data is not None:
                val = self._run_batches("test", *validation_data, batch_size)
                logs.update(zip(self._log_names("val_"), map(float, val)))
            bar.finish(logs)
            if verbose == 2:
                print(f"epoch {epoch + 1}/{epochs}  {format_logs(logs)}", flush=True)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break
        for cb in callbacks:
            cb.on_train_end()
        return history

    def _batch_reporter(self, bar, callbacks):
        """The function that shows a batch's running logs on ``bar`` and to ``callbacks``."""
        names = self._log_names()

        def report(batch, done, means):
            logs = dict(zip(names, means))
            bar.update(done, logs)
            for cb in callbacks:
                cb.on_batch_end(batch, logs)
        return report

    def evaluate(self, x, y, batch_size=32, verbose=0):
        """The loss on (x, y), or [loss, metric, ...] when the model has metrics."""
        x = self._prepare_x(x)
        y = self._prepare_y(y, len(x))
        values = [float(v) for v in self._run_batches("test", x, y, batch_size)]
        if verbose:
            print(format_logs(dict(zip(self._log_names(), values))), flush=True)
        return values if len(values) > 1 else values[0]

    def predict(self, x, batch_size=32):
        """The model's outputs for x, in inference mode (no dropout, running statistics)."""
        x = self._prepare_x(x)
        fn = self._function("predict")
        if len(x) == 0:
            return np.zeros((0,) + self.output_shape, dtype=self.dtype)
        return np.concatenate([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def train_on_batch(self, x, y):
        """One training step on one batch; returns the loss (or [loss, metric, ...])."""
        x = self._prepare_x(x)
        values = [float(v) for v in self._function("train")(x, self._prepare_y(y, len(x)))]
        return values if len(values) > 1 else values[0]

    def test_on_batch(self, x, y):
        """The loss (or [loss, metric, ...]) of one batch, without training."""
        x = self._prepare_x(x)
        values = [float(v) for v in self._function("test")(x, self._prepare_y(y, len(x)))]
        return values if len(values) > 1 else values[0]

    # -- reporting and files ------------------------------------------------------------------

    def summary(self, print_fn=print):
        """Print (with ``print_fn``) and return a table of the layers, their output shapes
        and parameter counts."""
        if not self.built and self.input_shape is not None:
            self.build()
        text = summary_text(self)
        if print_fn is not None:
            print_fn(text)
        return text

    def get_config(self):
        """The architecture: the model's name and each layer's class and constructor args."""
        return {"name": self.name, "seed": self.seed, "dtype": self.dtype,
                "layers": [{"class": type(layer).__name__, "config": layer.get_config()}
                           for layer in self.layers]}

    def save(self, path):
        """Write the architecture and weights to ``path`` (a .npz file)."""
        if not self.built:
            self.build()
        saving.save_model(self, path)

    @classmethod
    def load(cls, path):
        """A model rebuilt from a file written by ``save`` (compile it again to train it)."""
        return saving.load_model(path, cls)


def _snake(name):
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and name[i - 1].islower():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
