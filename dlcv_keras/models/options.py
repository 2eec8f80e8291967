"""Names the model builders accept; kept free of keras so validation can run before keras loads."""

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "linear")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "random_normal", "random_uniform", "zeros")
OPTIMIZERS = ("sgd", "adam")
MODELS = ("linear", "mlp", "cnn", "resnet18")
