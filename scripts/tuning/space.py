"""The search space of scripts.tune (configs/search_space.cfg): what a trial samples, and how its
values set a training config.

    space = read_space(Path("configs/search_space.cfg"), base=base, components=["ner"])
    values = suggest(trial, space=space)   # {"learn_rate": 0.0003, "spans": "128/96", ...}
    config, schedule = apply_values(base, values, space=space)

The file's format is described at its top. Values are what Optuna stores: numbers for ranges and
a label per choice (the value itself, "128/96" for a list, the block's name for a block), so a
study's history reads the way the file does.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from thinc.api import Config

from scripts.common.errors import UserError

SCHEDULE = "schedule"
SCHEDULE_SETTINGS = ("schedule.epochs", "schedule.warmup")
# What a replacing block keeps from the one it replaces, where its architecture takes it.
CARRIED_SETTINGS = ("tok2vec", "exclusive_classes", "nO")
RANGE_KEYS = {"settings", "low", "high", "log", "int"}
Label = Union[str, int, float, bool]


@dataclass(frozen=True)
class Parameter:
    """One searched hyperparameter: a range (low, high) or labelled choices."""

    name: str
    settings: tuple[str, ...]
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    integer: bool = False
    choices: Optional[Mapping[Label, Any]] = None  # label -> the value it sets


@dataclass(frozen=True)
class Pruning:
    startup_trials: int  # trials that run to the end before any is compared
    min_evaluations: int  # the first evaluation at which a trial can be stopped


@dataclass(frozen=True)
class SearchSpace:
    path: Path
    parameters: tuple[Parameter, ...]
    pruning: Pruning

    @property
    def settings(self) -> set[str]:
        return {setting for p in self.parameters for setting in p.settings}


@dataclass(frozen=True)
class TrialSchedule:
    """What a trial sets of the schedule the config step scales (None: as it chooses)."""

    epochs: Optional[int] = None
    warmup: Optional[float] = None


def read_space(path: Path, *, base: Config, components: list[str]) -> SearchSpace:
    """The search space in `path`, checked against the base config; settings of components the
    pipeline does not train are left out, and so are parameters left without settings."""
    if not path.is_file():
        raise UserError(f"{path}: search space not found; pass --space configs/search_space.cfg")
    try:
        raw = Config().from_disk(path, interpolate=False)
    except Exception as err:  # confection's parse errors carry no common base class
        raise UserError(f"{path}: not a readable config file ({' '.join(str(err).split())})")
    unknown = set(raw) - {"pruner", "parameters"}
    if unknown:
        raise UserError(
            f"{path}: unknown sections {sorted(unknown)}; the file has [pruner] and [parameters]"
        )
    trained = {"transformer", *components}
    parameters = []
    for name, entry in dict(raw.get("parameters", {})).items():
        parameter = read_parameter(name, entry, path=path, base=base)
        settings = tuple(s for s in parameter.settings if trains(s, trained))
        if settings:
            parameters.append(with_settings(parameter, settings))
    if not parameters:
        raise UserError(f"{path}: no [parameters.*] section applies to the components {components}")
    return SearchSpace(
        path=path, parameters=tuple(parameters), pruning=read_pruning(raw.get("pruner"), path)
    )


def read_parameter(name: str, entry: Any, *, path: Path, base: Config) -> Parameter:
    where = f"{path} [parameters.{name}]"
    if not isinstance(entry, dict):
        raise UserError(f"{where}: not a section; write it as [parameters.{name}]")
    settings = entry.get("settings")
    if not (isinstance(settings, list) and settings and all(isinstance(s, str) for s in settings)):
        raise UserError(f'{where}: settings must list what it sets, e.g. ["training.dropout"]')
    for setting in settings:
        check_setting(setting, base=base, where=where)
    if "choices" in entry:
        if set(entry) != {"settings", "choices"}:
            raise UserError(f"{where}: give either choices or low and high, not both")
        return Parameter(
            name=name,
            settings=tuple(settings),
            choices=read_choices(entry["choices"], settings=settings, base=base, where=where),
        )
    extra = set(entry) - RANGE_KEYS
    if extra or not {"low", "high"} <= set(entry):
        raise UserError(
            f"{where}: a range has low and high (and optionally log, int); found {sorted(entry)}"
        )
    integer = bool(entry.get("int", False))
    low, high = exact(entry["low"]), exact(entry["high"])
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)):
        raise UserError(f"{where}: low and high must be numbers")
    if integer and not (float(low).is_integer() and float(high).is_integer()):
        raise UserError(f"{where}: int = true needs whole numbers for low and high")
    if low >= high or (entry.get("log") and low <= 0):
        raise UserError(f"{where}: needs low < high (and low > 0 with log = true)")
    if any(s.startswith(f"{SCHEDULE}.") for s in settings) and len(settings) > 1:
        raise UserError(f"{where}: a schedule setting stands alone in its parameter")
    return Parameter(
        name=name,
        settings=tuple(settings),
        low=int(low) if integer else float(low),
        high=int(high) if integer else float(high),
        log=bool(entry.get("log", False)),
        integer=integer,
    )


def read_choices(
    choices: Any, *, settings: list[str], base: Config, where: str
) -> Mapping[Label, Any]:
    """label -> value: a list of scalars or lists (one value per setting), or named blocks."""
    if isinstance(choices, dict):
        for setting in settings:
            if not isinstance(lookup(base, setting), dict):
                raise UserError(f"{where}: block choices replace a block; {setting} is a value")
        blocks = {label: dict(block) for label, block in choices.items()}
        for label, block in blocks.items():
            check_architecture(block, where=f"{where} choice {label}")
        return blocks
    if not isinstance(choices, list) or len(choices) < 2:
        raise UserError(f"{where}: choices must list at least two values")
    labelled: dict[Label, Any] = {}
    for choice in choices:
        if isinstance(choice, list):
            if len(choice) != len(settings):
                raise UserError(
                    f"{where}: the choice {choice} has {len(choice)} values for "
                    f"{len(settings)} settings"
                )
            value = [exact(v) for v in choice]
            labelled["/".join(str(v) for v in value)] = value
        elif isinstance(choice, (str, int, float, bool)):
            labelled[exact(choice)] = exact(choice)
        else:
            raise UserError(f"{where}: the choice {choice!r} is not a value or a list of values")
    if len(labelled) != len(choices):
        raise UserError(f"{where}: choices repeat a value")
    return labelled


def check_architecture(block: Mapping[str, Any], *, where: str) -> None:
    """Fail early on a block that names no architecture, or one spaCy does not know."""
    from spacy.util import registry

    name = block.get("@architectures")
    try:
        registry.get("architectures", str(name))
    except Exception:  # catalogue's RegistryError, or no name at all
        raise UserError(
            f"{where}: @architectures {name!r} is not a registered architecture; "
            "use a name from spaCy's docs, e.g. spacy.TextCatReduce.v1"
        ) from None
    for key, value in block.items():
        if isinstance(value, Mapping) and "@architectures" in value:
            check_architecture(value, where=f"{where}.{key}")


def read_pruning(section: Any, path: Path) -> Pruning:
    values = dict(section or {})
    startup, minimum = values.get("startup_trials", 5), values.get("min_evaluations", 1)
    unknown = set(values) - {"startup_trials", "min_evaluations"}
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (startup, minimum))
    if unknown or not whole or startup < 0 or minimum < 1:
        raise UserError(
            f"{path} [pruner]: takes startup_trials (0 or more) and min_evaluations (1 or more), "
            f"whole numbers; found {values}"
        )
    return Pruning(startup_trials=startup, min_evaluations=minimum)


def exact(value: Any) -> Any:
    """A float as written: spaCy's config parser reads 0.3 as 0.30000000000000004."""
    return float(f"{value:.12g}") if isinstance(value, float) else value


def check_setting(setting: str, *, base: Config, where: str) -> None:
    if setting.startswith(f"{SCHEDULE}."):
        if setting not in SCHEDULE_SETTINGS:
            raise UserError(f"{where}: {setting} is not one of {', '.join(SCHEDULE_SETTINGS)}")
        return
    try:
        lookup(base, setting)
    except KeyError:
        raise UserError(
            f"{where}: the base config has no setting {setting}; "
            "name it as section.key, as in configs/base.cfg"
        ) from None


def lookup(config: Mapping[str, Any], setting: str) -> Any:
    node: Any = config
    for part in setting.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(setting)
        node = node[part]
    return node


def trains(setting: str, trained: set[str]) -> bool:
    """False for a setting of a component the pipeline leaves out."""
    parts = setting.split(".")
    return parts[0] != "components" or parts[1] in trained


def with_settings(parameter: Parameter, settings: tuple[str, ...]) -> Parameter:
    """The parameter narrowed to some of its settings (a list choice keeps their values)."""
    if settings == parameter.settings:
        return parameter
    keep = [parameter.settings.index(s) for s in settings]
    choices = parameter.choices
    if choices is not None:
        choices = {
            label: [value[i] for i in keep] if isinstance(value, list) else value
            for label, value in choices.items()
        }
    return Parameter(
        name=parameter.name,
        settings=settings,
        low=parameter.low,
        high=parameter.high,
        log=parameter.log,
        integer=parameter.integer,
        choices=choices,
    )


def suggest(trial: Any, *, space: SearchSpace) -> dict[str, Label]:
    """Sample every parameter from an Optuna trial (or Ray Tune's stand-in for one)."""
    values: dict[str, Label] = {}
    for p in space.parameters:
        if p.choices is not None:
            values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.integer:
            values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
        else:
            values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
    return values


def apply_values(
    base: Config, values: Mapping[str, Any], *, space: SearchSpace
) -> tuple[Config, TrialSchedule]:
    """A copy of the base config with a trial's values set, and what it sets of the schedule."""
    config = copy.deepcopy(base)
    schedule: dict[str, Any] = {}
    for p in space.parameters:
        if p.name not in values:
            raise UserError(
                f"the trial has no value for {p.name} ({space.path}); a study keeps the "
                "parameters it was run with: pass --study <new name> after changing the space"
            )
        value = values[p.name] if p.choices is None else p.choices[values[p.name]]
        for i, setting in enumerate(p.settings):
            one = value[i] if isinstance(value, list) else value
            section, _, key = setting.rpartition(".")
            if section == SCHEDULE:
                schedule[key] = one
            elif isinstance(one, dict):
                lookup(config, section)[key] = replaced_block(lookup(config, setting), one)
            else:
                lookup(config, section)[key] = one
    return config, TrialSchedule(**schedule)


def replaced_block(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """`new`, and the settings in CARRIED_SETTINGS that `old` has, where new's architecture (or an
    architecture nested in it, e.g. an ensemble's linear_model) takes them."""
    from spacy.util import registry

    block = copy.deepcopy(dict(new))
    for key, value in block.items():
        if isinstance(value, Mapping) and "@architectures" in value:
            block[key] = replaced_block(old, value)
    takes = inspect.signature(registry.get("architectures", block["@architectures"])).parameters
    for key in CARRIED_SETTINGS:
        if key in old and key in takes and key not in block:
            block[key] = copy.deepcopy(old[key])
    return block
