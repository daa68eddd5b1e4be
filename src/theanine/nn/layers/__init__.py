"""The layers of theanine.nn, one family per module."""

from theanine.nn.layers.base import Layer
from theanine.nn.layers.conv import AveragePooling2D, Conv2D, MaxPool2D, MaxPooling2D
from theanine.nn.layers.core import Activation, Dense, Dropout, Flatten, Reshape
from theanine.nn.layers.embedding import Embedding
from theanine.nn.layers.normalization import BatchNorm
from theanine.nn.layers.recurrent import GRU, LSTM, SimpleRNN

BatchNormalization = BatchNorm

__all__ = ["Layer", "Dense", "Activation", "Flatten", "Reshape", "Dropout", "Conv2D", "MaxPool2D",
           "MaxPooling2D", "AveragePooling2D", "BatchNorm", "BatchNormalization", "Embedding",
           "SimpleRNN", "LSTM", "GRU"]
