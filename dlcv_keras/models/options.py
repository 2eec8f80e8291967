"""Names the model builders accept; kept free of keras so validation can run before keras loads."""

ACTIVATIONS = ("relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "linear")
# Keras's initializer names, and "standard_normal": N(0, 1), IFT6135's "Normal" (Keras's own
# random_normal is N(0, 0.05^2)); models/builders.py keras_initializer maps it to Keras.
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                "random_normal", "standard_normal", "random_uniform", "zeros")
OPTIMIZERS = ("sgd", "adam")
# Normalisation inside q18's VGG: none (the seed's net) or batch normalisation after each conv.
NORMS = ("none", "batch")
MODELS = ("linear", "mlp", "cnn", "tiny_cnn", "resnet18", "vgg", "resnet18_transfer")
# q10's ways of using pretrained weights (models/pretrained.py).
TRANSFER_MODES = ("frozen", "finetune", "layerwise")
# Learning-rate schedules compile_model takes: a constant rate, or PyTorch's OneCycleLR (training/schedules.py).
SCHEDULES = ("constant", "one_cycle")

# What training.instruments.LayerProbe can measure inside a network while it trains (q13, q15).
INSTRUMENTS = ("gradients", "weights", "activations", "symmetry")

# The Keras backend that trains each model fastest on a CPU, measured by `python -m dlcv_keras.bench`:
# dense models on JAX, whose compiled loop in training/scanned.py runs near the matmul bound;
# convolutional ones on TensorFlow, which ran the q17 CNN about 30x faster than the JAX path
# here (3,200 images: 1.9 s on TensorFlow, 56 s through JAX; README, Performance).
FASTEST_BACKEND = {"linear": "jax", "mlp": "jax", "cnn": "tensorflow", "tiny_cnn": "tensorflow",
                   "resnet18": "tensorflow", "vgg": "tensorflow", "resnet18_transfer": "tensorflow"}

# Hyperparameter names each model builder takes (its keyword arguments), then those of the
# compile and fit steps: the names a search table may use for an experiment training that model.
# ``units_1`` ... ``units_8`` are per-layer widths of an MLP (a search can vary each hidden layer).
MLP_LAYER_WIDTHS = tuple(f"units_{i}" for i in range(1, 9))
MODEL_KEYS = {
    "linear": ("l1", "l2", "initializer"),
    "mlp": ("depth", "units", *MLP_LAYER_WIDTHS, "activation", "dropout", "l1", "l2", "initializer"),
    "cnn": ("dense_units", "dropout", "l2", "initializer"),
    "tiny_cnn": ("l2", "dropout", "initializer"),
    "resnet18": ("width", "l2", "dropout_first", "dropout_head"),
    "vgg": ("width", "dense_units", "dropout", "l2", "norm"),
    # The width and weights file come from q10's source experiment, not from the search.
    "resnet18_transfer": ("mode", "l2", "dropout_head"),
    # q7's numpy network (scratch/two_layer.py): ``std`` of its N(0, 1) weights, ``pca`` components (0 = off).
    "two_layer": ("units", "l2", "std", "pca"),
}
# Models written in numpy (dlcv_keras/scratch) that only its solver trains: no Keras builder, no backend.
# Their tables take SOLVER_KEYS instead of COMPILE_KEYS and FIT_KEYS.
SCRATCH_MODELS = ("two_layer",)
# scratch/solver.py's settings: plain SGD whose rate ``lr_decay`` multiplies after every epoch; a run of
# ``epochs`` or of ``iterations`` SGD steps; ``patience`` as in FIT_KEYS; ``augment`` "none" or "flip".
SOLVER_KEYS = ("lr", "lr_decay", "batch_size", "epochs", "iterations", "patience", "augment")
# ``input_mean``/``input_variance`` are builder arguments too, but data statistics, not hyperparameters.
# compile_model's: ``schedule`` "one_cycle" with ``max_lr``; ``weight_decay`` coupled (PyTorch's);
# ``grad_clip`` clips each gradient value, ``clipnorm`` each gradient's norm (0 = off);
# ``early_lr_factor`` scales the learning rate of the early layers the caller names.
COMPILE_KEYS = ("lr", "optimizer", "momentum", "max_lr", "weight_decay", "grad_clip", "clipnorm",
                "schedule", "early_lr_factor")
# ``patience``: Keras EarlyStopping on val_loss, best weights restored (q8); 0 = off.
# ``augment``: "none", "full" or augmentation names joined by "+" (data/augment.py), training split only;
# ``plateau_patience``/``plateau_factor``: ReduceLROnPlateau on val_loss (q18), 0 = off.
FIT_KEYS = ("batch_size", "epochs", "train_fraction", "patience", "augment", "plateau_factor", "plateau_patience")
# The keys of a run rather than of its model, compile or fit step: ``repeat`` k trains the same setting
# again from seed --seed + k (initial weights, data order, dropout masks, augmentation; the data split
# stays --seed's), so a grid ``repeat = [0, 1, 2]`` gives three repeats whose mean and spread a
# RunComparison reports.
RUN_KEYS = ("repeat",)
