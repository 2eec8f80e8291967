"""A run picks its Keras backend from the models it trains, before Keras loads; an exported one wins.
TensorFlow's oneDNN kernels are on where TensorFlow would leave them off, unless the user said otherwise."""

import os
import platform
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


# -- TensorFlow's oneDNN kernels ----------------------------------------------------------------
AVX2_ONLY = frozenset({"sse4_2", "avx", "avx2", "fma"})      # an AMD EPYC of the Zen 2/3 kind
AVX512_VNNI = AVX2_ONLY | {"avx512f", "avx512_vnni"}           # where TensorFlow turns oneDNN on itself


def decide(monkeypatch, flags, **exported):
    """use_onednn and onednn_state on an environment holding ``exported``, on a CPU with ``flags``,
    before TensorFlow is imported; returns (environment after, state)."""
    monkeypatch.setattr(backends, "cpu_flags", lambda: flags)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    environ = dict(exported)
    backends.use_onednn(environ)
    return environ, backends.onednn_state(environ)


def test_onednn_goes_on_only_where_tensorflow_leaves_it_off_and_an_exported_variable_wins(monkeypatch):
    environ, state = decide(monkeypatch, AVX2_ONLY)
    assert environ == {backends.ONEDNN: "1", backends.ONEDNN_OURS: "1"}
    assert state == {"on": True, "decided_by": "dlcv_keras"}
    # TensorFlow's own default turns it on: nothing to set.
    assert decide(monkeypatch, AVX512_VNNI) == ({}, {"on": True, "decided_by": "tensorflow"})
    for flag in backends.ONEDNN_CPU_FLAGS:
        assert decide(monkeypatch, AVX2_ONLY | {flag})[0] == {}, flag
    # Not an x86-64 Linux: TensorFlow's rule there is left alone, and not guessed.
    assert decide(monkeypatch, None) == ({}, {"on": None, "decided_by": "tensorflow"})
    # The user's variable, either way, wins; so does one TensorFlow reads as "use your default".
    assert decide(monkeypatch, AVX2_ONLY, TF_ENABLE_ONEDNN_OPTS="0") == (
        {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"on": False, "decided_by": "user"})
    assert decide(monkeypatch, AVX2_ONLY, TF_ENABLE_ONEDNN_OPTS="true")[1] == {"on": True, "decided_by": "user"}
    assert decide(monkeypatch, AVX2_ONLY, TF_ENABLE_ONEDNN_OPTS="yes") == (
        {"TF_ENABLE_ONEDNN_OPTS": "yes"}, {"on": False, "decided_by": "tensorflow"})
    # A child process inherits both variables and still knows the default was ours; a 1 without
    # our mark, or our mark beside the user's 0, is the user's.
    assert decide(monkeypatch, AVX512_VNNI, TF_ENABLE_ONEDNN_OPTS="1", DLCV_ONEDNN_DEFAULT="1")[1]["decided_by"] == "dlcv_keras"
    assert decide(monkeypatch, AVX2_ONLY, TF_ENABLE_ONEDNN_OPTS="1")[1]["decided_by"] == "user"
    assert decide(monkeypatch, AVX2_ONLY, TF_ENABLE_ONEDNN_OPTS="0", DLCV_ONEDNN_DEFAULT="1")[1] == {
        "on": False, "decided_by": "user"}


def test_once_tensorflow_is_imported_the_variable_is_left_alone(monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: AVX2_ONLY)
    monkeypatch.setitem(sys.modules, "tensorflow", sys)         # imported: too late to matter
    monkeypatch.setattr(backends, "tensorflow_onednn_on", lambda: False)
    environ = {}
    backends.use_onednn(environ)
    assert environ == {}
    assert backends.onednn_state(environ) == {"on": False, "decided_by": "tensorflow"}   # TensorFlow's own answer


def test_the_cpu_flags_are_this_machines():
    flags = backends.cpu_flags()
    if platform.system() == "Linux" and platform.machine() == "x86_64":
        assert {"sse2", "avx"} <= flags                        # every x86-64 CPU TensorFlow 2.x runs on
    else:
        assert flags is None


ONEDNN_IN_CHILD = ("import json, subprocess, sys\nimport dlcv_keras, tensorflow\nfrom dlcv_keras import backends\n"
                   "child = subprocess.run([sys.executable, '-c', 'import dlcv_keras, json, tensorflow; "
                   "from dlcv_keras import backends; print(json.dumps(backends.onednn_state()))'],\n"
                   "                       capture_output=True, text=True, check=True).stdout\n"
                   "print(json.dumps([backends.tensorflow_onednn_on(), backends.onednn_state(), json.loads(child)]))")


def onednn_in_child(**env):
    import json

    clean = {k: v for k, v in os.environ.items() if k not in (backends.ONEDNN, backends.ONEDNN_OURS)}
    done = subprocess.run([sys.executable, "-c", ONEDNN_IN_CHILD], env={**clean, **env},
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_a_fresh_process_and_its_children_run_tensorflow_with_onednn_on_unless_the_user_says_no():
    tensorflow_says, state, grandchild = onednn_in_child()
    expected = "tensorflow" if backends.tensorflow_default_onednn(backends.cpu_flags()) else "dlcv_keras"
    if backends.cpu_flags() is not None:                # x86-64 Linux: on, by TensorFlow's default or ours
        assert tensorflow_says is True and state == {"on": True, "decided_by": expected}
    assert grandchild == state                          # a child started through the environment agrees
    tensorflow_says, state, grandchild = onednn_in_child(TF_ENABLE_ONEDNN_OPTS="0")
    assert tensorflow_says is False and state == grandchild == {"on": False, "decided_by": "user"}
