"""Forward propagation through a small ReLU network with fixed weights.

Two inputs, two hidden layers of two nodes each, one output:

    input [2, 3] -> hidden 1 (2 nodes, relu) -> hidden 2 (2 nodes, relu) -> output (1 node)

Each hidden node computes relu(weights . inputs); the output node is the
plain weighted sum of the last hidden layer. The network is written
symbolically with theanine.tensor, compiled, run, and checked against the
same computation in plain NumPy.

    python examples/forward_propagation.py
"""

import numpy as np

import theanine
import theanine.tensor as T

input_data = np.array([2.0, 3.0])

# Fixed weights, one row per node: node_0_0 is node 0 of hidden layer 1, and so on.
node_weights = {
    "node_0_0": [2.0, 4.0],
    "node_0_1": [4.0, -5.0],
    "node_1_0": [-1.0, 2.0],
    "node_1_1": [1.0, 2.0],
    "output": [2.0, 7.0],
}

# The same numbers as matrices: column j holds the weights into node j of the
# next layer, so a layer is dot(previous activations, W).
W1 = np.array([node_weights["node_0_0"], node_weights["node_0_1"]]).T
W2 = np.array([node_weights["node_1_0"], node_weights["node_1_1"]]).T
W_out = np.array([node_weights["output"]]).T


def build():
    """The symbolic network: returns (input, [hidden_1, hidden_2, output])."""
    x = T.dvector("x")
    # Weights that never change are constants in the graph.
    hidden_1 = T.nnet.relu(T.dot(x, T.constant(W1, name="W1")))
    hidden_2 = T.nnet.relu(T.dot(hidden_1, T.constant(W2, name="W2")))
    output = T.dot(hidden_2, T.constant(W_out, name="W_out"))
    hidden_1.name, hidden_2.name, output.name = "hidden_1", "hidden_2", "output"
    return x, [hidden_1, hidden_2, output]


def numpy_reference(x):
    """The same network in NumPy, to check the symbolic one against."""
    hidden_1 = np.maximum(x @ W1, 0.0)
    hidden_2 = np.maximum(hidden_1 @ W2, 0.0)
    return [hidden_1, hidden_2, hidden_2 @ W_out]


def main():
    x, layers = build()
    f = theanine.function([x], layers, mode="py")
    hidden_1, hidden_2, output = f(input_data)

    print(f"input:    {input_data}")
    print(f"hidden_1: {hidden_1}   (relu of [2*2 + 4*3, 4*2 - 5*3] = relu([16, -7]))")
    print(f"hidden_2: {hidden_2}   (relu of [-1*16 + 2*0, 1*16 + 2*0] = relu([-16, 16]))")
    print(f"output:   {output}   (2*0 + 7*16)")
    print(f"prediction: {output[0]:g}")

    for got, want in zip([hidden_1, hidden_2, output], numpy_reference(input_data)):
        np.testing.assert_allclose(got, want)
    print("matches NumPy: yes")


if __name__ == "__main__":
    main()
