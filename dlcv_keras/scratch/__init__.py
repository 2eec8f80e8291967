"""Deep learning by hand, in numpy: what the assignments teach before ``model.fit``.

- ``engine``: a scalar value graph with reverse-mode gradients (q2), after micrograd;
- ``expression``: safe parsing of a user's f(x, y, z) into that graph, TensorFlow or floats;
- ``layers``: cs231n-style ``*_forward`` / ``*_backward`` function pairs;
- ``nn``: those layers as modules, a container and a classifier network (q3 --impl scratch);
- ``optim``: SGD with optional gradient clipping;
- ``gradient_check``: central differences and relative errors (q6, q16);
- ``conv``: a vectorised conv2d with backward, Gaussian kernels (q4) and q5's conv regression;
- ``two_layer``: the HLCV two-layer network on toy data (q6) and on CIFAR-10's images (q7);
- ``solver``: minibatch SGD for those networks, with what ``model.fit`` logs.

Nothing here imports Keras or TensorFlow at import time; tests check every backward
pass against TensorFlow's autodiff and against numerical gradients.
"""
