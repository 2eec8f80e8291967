"""Names the model builders accept; kept free of keras so validation can run before keras loads."""

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "linear")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "random_normal", "random_uniform", "zeros")
OPTIMIZERS = ("sgd", "adam")
MODELS = ("linear", "mlp", "cnn", "resnet18")

# The Keras backend that trains each model fastest on a CPU, measured by `python -m dlcv_keras.bench`:
# dense models on JAX, whose compiled loop in training/scanned.py runs near the matmul bound;
# convolutional ones on TensorFlow, which ran the q17 CNN about 30x faster than the JAX path
# here (3,200 images: 1.9 s on TensorFlow, 56 s through JAX; README, Performance).
FASTEST_BACKEND = {"linear": "jax", "mlp": "jax", "cnn": "tensorflow", "resnet18": "tensorflow"}

# Hyperparameter names each model builder takes (its keyword arguments), then those of the
# compile and fit steps: the names a search table may use for an experiment training that model.
# ``units_1`` ... ``units_8`` are per-layer widths of an MLP (a search can vary each hidden layer).
MLP_LAYER_WIDTHS = tuple(f"units_{i}" for i in range(1, 9))
MODEL_KEYS = {
    "linear": ("l1", "l2", "initializer"),
    "mlp": ("depth", "units", *MLP_LAYER_WIDTHS, "activation", "dropout", "l1", "l2", "initializer"),
    "cnn": ("dense_units", "dropout", "l2", "initializer"),
    "resnet18": ("l2",),
}
COMPILE_KEYS = ("lr", "optimizer", "momentum")
# ``patience``: Keras EarlyStopping on val_loss, best weights restored (q8); 0 = off.
FIT_KEYS = ("batch_size", "epochs", "train_fraction", "patience")
