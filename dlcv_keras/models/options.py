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
