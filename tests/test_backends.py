"""A run picks its Keras backend from the models it trains, before Keras loads; an exported one wins."""

import os
import subprocess
import sys

from dlcv_keras import backends
from dlcv_keras.models.options import FASTEST_BACKEND, MODELS
from dlcv_keras.questions import QUESTIONS, get_question

CHOOSE = ("import os, sys\nfrom dlcv_keras import backends\nprint(backends.choose(sys.argv[1:]), "
          "os.environ.get('JAX_COMPILATION_CACHE_DIR'), 'keras' in sys.modules)")


def choose_in_child(models, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KERAS_BACKEND", "JAX_"))}
    done = subprocess.run([sys.executable, "-c", CHOOSE, *models], env={**clean, **env},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.split()


def test_every_model_has_a_backend_and_dense_models_get_the_fast_path():
    assert set(FASTEST_BACKEND) == set(MODELS) and set(FASTEST_BACKEND.values()) <= set(backends.BACKENDS)
    assert backends.fastest_for(["mlp"]) == backends.fastest_for(["linear"]) == "jax"
    assert backends.fastest_for([None, "cnn", "mlp"]) == "tensorflow"      # the first model decides
    assert backends.fastest_for([None]) == backends.DEFAULT
    for name in QUESTIONS:                        # every question's model is one the table knows
        assert get_question(name).model in (None, *MODELS)


def test_choose_sets_the_backend_and_the_compile_cache_before_keras_loads(tmp_path):
    backend, cache, keras_loaded = choose_in_child(["mlp"], DLCV_CACHE_DIR=str(tmp_path))
    assert (backend, cache, keras_loaded) == ("jax", str(tmp_path / "jax"), "False")
    assert choose_in_child(["cnn"])[:2] == ["tensorflow", "None"]       # no JAX cache for TensorFlow
    assert choose_in_child(["mlp"], KERAS_BACKEND="tensorflow")[0] == "tensorflow"


def test_an_unknown_exported_backend_is_one_line_and_exit_2(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "DLCV_DATA_DIR"}
    done = subprocess.run([sys.executable, "-m", "dlcv_keras.run", "q1", "--profile", "smoke", "--results",
                           str(tmp_path / "results")], env={**env, "KERAS_BACKEND": "bogus"},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: KERAS_BACKEND must be one of 'jax', 'tensorflow' "
                                   "(or unset, to let each run choose), got 'bogus'")
    assert not (tmp_path / "results").exists()
