"""Search-space files: parsing, validation messages, the packaged files."""

import pytest

from dlcv_keras.questions import QUESTIONS
from dlcv_keras.resources import packaged_dir
from dlcv_keras.settings import PROFILES
from dlcv_keras.tuning.spaces import load_space, parse_space
from dlcv_keras.validation import InvalidParameterError

GOOD = {"quick": {"max_train": 100, "random_trials": 3,
                  "early_stopping": {"min_epochs": 5, "min_delta": 1e-4},
                  "grid": {"lr": [1e-2, 1e-3], "batch_size": [32, 64, 128], "l2": 1e-3, "epochs": 4}}}


def test_parse_splits_fixed_values_from_choices():
    space = parse_space(GOOD, "quick", experiments=["grid"])
    grid = space.experiment("grid")
    assert grid.fixed == {"l2": 1e-3, "epochs": 4}
    assert grid.choices == {"lr": [1e-2, 1e-3], "batch_size": [32, 64, 128]}
    assert grid.grid_size() == 6
    assert space.settings == {"max_train": 100, "random_trials": 3}
    assert space.early_stopping == {"min_epochs": 5, "min_delta": 1e-4}


def test_ranges_are_for_random_search_only():
    doc = {"quick": {"s": {"lr": {"min": 1e-4, "max": 1e-1, "sampling": "log"}, "batch_size": 32, "epochs": 1}}}
    space = parse_space(doc, "quick", tuner="random")
    assert space.experiment("s").ranges["lr"].sampling == "log"
    with pytest.raises(InvalidParameterError, match=r"lr must be a list of values for --tuner grid"):
        parse_space(doc, "quick", tuner="grid")


@pytest.mark.parametrize("key, value, expected", [
    ("lr", -0.01, r"\[quick.grid\] lr must be a number in \(0, 10\], got -0.01"),
    ("lr", [0.1, -1.0], r"lr must be a number in \(0, 10\], got -1.0"),
    ("batch_size", 0, r"batch_size must be an int in \[1, 1000000\], got 0"),
    ("batch_size", 32.5, r"batch_size must be an int in \[1, 1000000\], got 32.5"),
    ("lr", [], r"lr must be a non-empty list of values, got \[\]"),
    ("dropout", 1.0, r"dropout must be a number in \[0, 1\), got 1.0"),
    ("activation", "swishy", r"activation must be one of .*'relu'.*, got 'swishy'"),
    ("learning_rate", 0.1, r"learning_rate must be one of the names this experiment reads \(.*\blr\b.*\), got 'learning_rate'"),
    ("lr", "fast", r"lr must be a number, got 'fast'"),
    ("epochs", [3, 3], r"epochs must not repeat a value, got \[3, 3\]"),
])
def test_bad_values_name_the_key_the_domain_and_the_value(key, value, expected):
    doc = {"quick": {"grid": {"lr": 0.1, "batch_size": 32, "epochs": 1, key: value}}}
    with pytest.raises(InvalidParameterError, match=expected):
        parse_space(doc, "quick", source="q.toml")


def test_missing_profile_or_experiment_table_is_reported():
    with pytest.raises(InvalidParameterError, match=r"must have a \[full\] table, got tables \['quick'\]"):
        parse_space(GOOD, "full")
    with pytest.raises(InvalidParameterError, match=r"must have a \[quick.base\] table"):
        parse_space(GOOD, "quick", experiments=["base"])


def test_bad_profile_settings_are_reported():
    with pytest.raises(InvalidParameterError, match=r"max_train must be an int >= 1, got 0"):
        parse_space({"quick": {"max_train": 0}}, "quick")
    with pytest.raises(InvalidParameterError, match=r"early_stopping\] must set min_delta"):
        parse_space({"quick": {"early_stopping": {"min_epochs": 3}}}, "quick")


def test_malformed_and_missing_files_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[quick\nlr = ")
    with pytest.raises(InvalidParameterError) as info:
        load_space(bad, "quick")
    assert "must be valid TOML" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InvalidParameterError, match="must be an existing .toml file"):
        load_space(tmp_path / "absent.toml", "quick")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_packaged_space_files_cover_every_profile_and_experiment(name, profile):
    question = QUESTIONS[name]
    path = packaged_dir("tuners") / f"{name}.toml"
    for implementation in question.implementations:
        tables = question.space_tables(implementation)
        # An experiment that fixes its tuner (q16's and q18's random searches) is parsed as it, as run does.
        for chosen in ("grid", "random"):
            tuners = {e.name: getattr(e, "tuner", None) or chosen for e in question.all_experiments()}
            space = load_space(path, profile, experiments=question.space_domains(), required=tables, tuner=tuners)
            assert set(tables) <= set(space.experiments)
            if question.early_stopping:
                assert space.early_stopping is not None


def test_q1_full_profile_is_the_seed_grid():
    space = load_space(packaged_dir("tuners") / "q1.toml", "full")
    grid = space.experiment("full_grid")
    assert grid.choices == {"lr": [0.1, 0.01, 0.001], "l2": [0.1, 0.01, 0.001],
                            "epochs": [50, 100], "batch_size": [32, 64]}
    assert grid.grid_size() == 36


# -- names checked against what each experiment uses -------------------------------------------
def _q1_document(**changes):
    from dlcv_keras.tuning.spaces import tomllib   # tomli on Python 3.10

    document = tomllib.loads((packaged_dir("tuners") / "q1.toml").read_text())
    for table, values in changes.items():
        document["quick"][table] = {**document["quick"].get(table, {}), **values}
    return document


@pytest.mark.parametrize("table, key, value", [
    ("full_grid", "dropout", [0.0, 0.5]),       # the linear model has no dropout: identical trials
    ("full_grid", "units", [64, 128]),          # nor hidden units
    ("base", "kernel_size", 3),                 # a from-scratch kind's setting, not a search's
])
def test_a_name_the_experiments_model_does_not_use_is_one_line_naming_file_table_key_and_accepted_names(
        table, key, value):
    question = QUESTIONS["q1"]
    with pytest.raises(InvalidParameterError) as info:
        parse_space(_q1_document(**{table: {key: value}}), "quick", source="q1.toml",
                    experiments=question.space_domains())
    message = str(info.value)
    assert message.startswith(f"q1.toml [quick.{table}] {key} must be one of the names this experiment reads (")
    assert message.endswith(f"got {key!r} = {value!r}") and "\n" not in message
    accepted = message[message.index("(") + 1:message.index(")")].split(", ")
    assert accepted == sorted(question.space_domains()[table])
    assert "lr" in accepted and "l2" in accepted and key not in accepted


def test_an_mlp_search_accepts_its_own_names_and_the_linear_one_does_not():
    mlp = QUESTIONS["q3"].space_domains()["grid"]
    linear = QUESTIONS["q1"].space_domains()["full_grid"]
    assert {"units", "depth", "dropout", "units_1", "lr", "batch_size", "patience"} <= set(mlp)
    assert not {"units", "depth", "dropout", "units_1"} & set(linear)


def test_a_table_of_no_experiment_is_one_line_listing_the_questions_tables():
    document = _q1_document(ful_grid={"lr": [0.1]})
    with pytest.raises(InvalidParameterError, match=r"^q1.toml \[quick.ful_grid\] must be a table of one of this "
                                                    r"question's experiments \(base, .*full_grid.*\), got an unknown "
                                                    r"table 'ful_grid'$"):
        parse_space(document, "quick", source="q1.toml", experiments=QUESTIONS["q1"].space_domains())


def test_a_from_scratch_kind_reads_only_its_own_settings():
    q4 = QUESTIONS["q4"]
    assert set(q4.space_domains()["blur"]) == {"kernel_size", "sigma", "images", "filters", "stride"}
    with pytest.raises(InvalidParameterError, match=r"\[quick.blur\] lr must be one of the names"):
        parse_space({"quick": {"blur": {"lr": 0.1}}}, "quick", experiments=q4.space_domains())


# -- Python 3.10: no tomllib in the standard library ------------------------------------------
# A Python without tomllib (3.10), simulated in a fresh process: tomllib is blocked before the package
# is imported. TOMLI is the tomli package when it is installed; otherwise the standard library's
# tomllib stands in under that name (it is tomli 2, moved into the standard library in 3.11), so the
# fallback import itself is what is tested either way.
WITHOUT_TOMLLIB = """
import sys
try:
    import tomli
except ModuleNotFoundError:
    import tomllib as tomli
    sys.modules["tomli"] = tomli
sys.modules["tomllib"] = None            # import tomllib now fails as on Python 3.10
from dlcv_keras.resources import packaged_dir
from dlcv_keras.tuning.spaces import load_space, tomllib
assert tomllib is tomli, tomllib
space = load_space(packaged_dir("tuners") / "q1.toml", "quick")
print(sorted(space.experiments))
"""


def test_search_spaces_load_on_a_python_without_tomllib():
    import subprocess
    import sys
    from pathlib import Path

    try:
        import tomli  # noqa: F401
    except ModuleNotFoundError:
        try:
            import tomllib  # noqa: F401
        except ModuleNotFoundError:
            pytest.skip("neither tomli nor tomllib is importable: nothing to read TOML with")
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", WITHOUT_TOMLLIB], capture_output=True, text=True, timeout=120,
                          cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[0] == "['base', 'fractions', 'full_grid', 'lr_batch']"


def test_pyproject_requires_tomli_below_python_3_11():
    from pathlib import Path

    from packaging.requirements import Requirement

    from dlcv_keras.tuning.spaces import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.10"
    tomli = [Requirement(text) for text in project["dependencies"] if Requirement(text).name == "tomli"]
    assert len(tomli) == 1 and tomli[0].marker is not None, tomli
    assert tomli[0].marker.evaluate({"python_version": "3.10"})
    assert not tomli[0].marker.evaluate({"python_version": "3.11"})
