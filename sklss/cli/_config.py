"""Options of ``sklss fit`` and ``sklss sample``: defaults, flags and a TOML file.

Flags win over the file; the file's ``[encoder]``, ``[propagator]`` and ``[decoder]`` tables
set any parameter of those estimators.
"""

from pathlib import Path

from ._errors import CommandError

_FIT_DEFAULTS = {
    "features": None,
    "configurations": None,
    "topology": None,
    "trajectories": None,
    "featurizer": "torsions",
    "angles": "all",
    "selection": "ca",
    "decoder_selection": "heavy",
    "stride": 1,
    "features_dir": None,
    "n_jobs": 1,
    "frame_time": None,
    "lag_time": None,
    "n_components": 2,
    "n_kernels": 24,
    "max_epochs": 100,
    "decode": True,
    "device": "cpu",
    "seed": 0,
    "output": "sklss-model",
    "verbose": 1,
}


_SAMPLE_DEFAULTS = {
    "model": None,
    "n_trajectories": None,
    "n_steps": None,
    "output": None,
    "latent_output": None,
    "start": None,
    "topology": None,
    "seed": 0,
    "verbose": 1,
}


_SECTIONS = ("encoder", "propagator", "decoder")


def _read_toml(path):
    path = Path(path)
    if not path.is_file():
        raise CommandError(f"config file '{path}' does not exist")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise CommandError("--config needs Python 3.11+ (or 'pip install tomli')") from None
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"config file '{path}' is not valid TOML: {exc}") from None


_PATH_KEYS = {
    "features",
    "configurations",
    "topology",
    "trajectories",
    "features_dir",
    "output",
    "model",
}
_LIST_KEYS = {"features", "configurations", "trajectories"}
_POSITIVE_INT_KEYS = {"lag_time", "n_components", "n_kernels", "max_epochs", "stride", "n_jobs"}
_CHOICES = {
    "featurizer": ("torsions", "distances", "torsions+distances"),
    "angles": ("all", "backbone", "sidechain"),
    "device": ("cpu", "cuda", "auto"),
    "verbose": (0, 1, 2, 3),
}


def _config_value(key, value, path):
    """A value from the TOML file, checked as its flag would be; paths relative to the file."""

    def wrong(expected):
        return CommandError(f"config file '{path}': {key} must be {expected}; got {value!r}")

    is_int = isinstance(value, int) and not isinstance(value, bool)
    if key in _POSITIVE_INT_KEYS and not (is_int and value >= 1):
        raise wrong("a positive integer")
    if key == "seed" and not is_int:
        raise wrong("an integer")
    if key == "frame_time" and not (isinstance(value, (int, float)) and value > 0):
        raise wrong("a positive number of ps")
    if key == "decode" and not isinstance(value, bool):
        raise wrong("true or false")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise wrong(f"one of {list(_CHOICES[key])}")
    if key in _PATH_KEYS:
        items = value if key in _LIST_KEYS and isinstance(value, list) else [value]
        if not items or not all(isinstance(v, str) for v in items):
            raise wrong("a path" + (" or a list of paths" if key in _LIST_KEYS else ""))
        paths = [str(Path(path).parent / v) for v in items]
        return paths if key in _LIST_KEYS else paths[0]
    return value


def _settings(args, defaults):
    """Options from flags, then the TOML file, then the defaults; plus estimator tables."""
    config = _read_toml(args.config) if args.config else {}
    unknown = sorted(set(config) - set(defaults) - set(_SECTIONS))
    if unknown:
        raise CommandError(
            f"config file '{args.config}': unknown option {unknown[0]!r}; options are "
            f"{sorted(defaults)} and the tables {list(_SECTIONS)}"
        )
    settings = {}
    for key, default in defaults.items():
        value = getattr(args, key, None)
        if value is None and key in config:
            value = _config_value(key, config[key], args.config)
        settings[key] = default if value is None else value
    tables = {}
    for section in _SECTIONS:
        table = config.get(section, {})
        if not isinstance(table, dict):
            raise CommandError(f"config file '{args.config}': [{section}] must be a table")
        tables[section] = table
    return settings, tables


def _set_table(estimator, table, section, config):
    """Set estimator parameters from a TOML table, naming the file and key of a mistake."""
    valid = estimator.get_params(deep=False)
    for key, value in table.items():
        if key not in valid:
            raise CommandError(
                f"config file '{config}': [{section}] has no parameter {key!r}; "
                f"{type(estimator).__name__} takes {sorted(valid)}"
            )
        if isinstance(value, list):
            value = tuple(value)
        estimator.set_params(**{key: value})
    return estimator


def _say(settings, message):
    if settings["verbose"]:
        print(message, flush=True)
