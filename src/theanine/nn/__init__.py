"""theanine.nn: a small Keras-like layer library built on theanine's symbolic API.

    from theanine.nn import Sequential, Dense
    model = Sequential()
    model.add(Dense(units=6, kernel_initializer="uniform", activation="relu", input_dim=11))
    model.add(Dense(units=1, kernel_initializer="uniform", activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, batch_size=10, epochs=50)

Layers (``layers``), optimizers as Theano-style update functions
(``optimizers``), losses, metrics and callbacks each live in their own module;
``Sequential`` (``model``) compiles them into one theanine function per task.
"""

from theanine.nn import activations, callbacks, initializers, losses, metrics, optimizers
from theanine.nn.callbacks import Callback, EarlyStopping, History, LambdaCallback
from theanine.nn.layers import (GRU, LSTM, Activation, AveragePooling2D, BatchNorm,
                                BatchNormalization, Conv2D, Dense, Dropout, Embedding, Flatten,
                                Layer, MaxPool2D, MaxPooling2D, Reshape, SimpleRNN)
from theanine.nn.model import Sequential
from theanine.nn.optimizers import adagrad, adam, rmsprop, sgd
from theanine.nn.saving import load_model

__all__ = ["Sequential", "load_model", "Layer", "Dense", "Activation", "Flatten", "Reshape",
           "Dropout", "Conv2D", "MaxPool2D", "MaxPooling2D", "AveragePooling2D", "BatchNorm",
           "BatchNormalization", "Embedding", "SimpleRNN", "LSTM", "GRU", "sgd", "adagrad",
           "rmsprop", "adam", "Callback", "History", "EarlyStopping", "LambdaCallback",
           "activations", "callbacks", "initializers", "losses", "metrics", "optimizers"]
