"""Heavy evidence computed once, committed with its provenance, verified on every CI run (the zoo's pattern).

Some of the book's evidence takes hours on a CPU (converged attacks on every reference model, say). A
``ResultSpec`` names such a result: its configuration, its units of work (one model, say), how to compute a unit and
how to recompute any one row. ``build_results`` computes the units one by one into ``<root>/<name>/parts/`` (a
unit written is never recomputed: an interrupted build resumes), then writes ``rows.csv`` and ``manifest.json``:

- ``config`` and ``config_hash`` (sha256 of the canonical JSON of the configuration): a result computed under
  another configuration is refused by ``load_results``;
- ``rows_sha256``: an altered or truncated ``rows.csv`` is refused;
- ``dtypes``: each column's type, so that text columns come back as text (``"01"`` stays ``"01"``, ``"NA"`` stays
  ``"NA"``) rather than as read_csv infers them (results built before this field load as before; ``unit`` is
  always text), and ``dtypes_sha256``, their hash: edited types would change how the rows are read (results built
  before the hash have their types checked against the rows: a column recorded as numbers must read as numbers);
- ``code_digest`` (sha256 of the source of the modules that compute it), ``versions``, ``hardware``, ``seconds``
  (per unit and in all), ``created`` and the ``command`` that rebuilds it.

``verify_results`` recomputes a random sample of rows, drawn with a seed (CI: one that changes with the commit), and
compares them with the committed values within the spec's tolerance: the committed numbers stay the numbers the
current code computes.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import io
import json
import math
import numbers
import os
import platform
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._checks import check_seed, json_leaves
from ._io import atomic_path, file_digest, json_default, write_json
from .runtime import resolve_device

__all__ = ["RESULTS_ROOT", "RESULTS_ENV", "ResultSpec", "results_root", "config_hash", "build_results",
           "load_results", "read_manifest", "verify_results", "check_verified", "sample_seed"]

RESULTS_ROOT = Path(__file__).resolve().parents[1] / "results"  # the committed results (ATTRBOUND_RESULTS overrides)
RESULTS_ENV = "ATTRBOUND_RESULTS"
BUILD_COMMAND = "attrbound results build --only {name}"


@dataclass(frozen=True)
class ResultSpec:
    """A heavy result: what it is, how it is computed and how one of its rows is recomputed.

    Attributes:
        name: the folder under the results root (``"ch7_ifia_budget"``).
        title: one line for people.
        config: everything that determines the numbers (JSON-able); its hash keys the result.
        keys: the columns that identify a row (a tuple of distinct names; a single string is refused).
        values: the columns that ``verify_results`` compares (distinct names).
        tolerance: the largest absolute difference a recomputed value may show (float rounding across CPUs).
        units: the units of work, in order (strings, also used as file names).
        compute: ``compute(unit, device, progress) -> DataFrame`` with the ``keys`` and ``values`` columns (a
            callable, checked at construction).
        recompute: ``recompute(rows, device) -> DataFrame``: the ``keys`` and ``values`` of ``rows`` (rows of one
            unit, with a ``unit`` column), computed again (a callable).
        modules: the modules whose source is hashed into ``code_digest``.
        extras: further columns kept in ``rows.csv`` but not compared by ``verify_results`` (timings, or quantities
            that follow from the values), distinct from the keys and values.
        digits: significant digits of the floats written but the keys' (17: every float64 read back exactly; 9:
            every float32).
    """

    name: str
    title: str
    config: dict
    keys: tuple[str, ...]
    values: tuple[str, ...]
    tolerance: float
    units: tuple[str, ...]
    compute: Callable[[str, torch.device, bool], pd.DataFrame]
    recompute: Callable[[pd.DataFrame, torch.device], pd.DataFrame]
    modules: tuple[str, ...] = field(default=())
    extras: tuple[str, ...] = field(default=())
    digits: int = 17

    def __post_init__(self):
        for what, value in (("name", self.name), *(("a unit", u) for u in self.units)):
            if not isinstance(value, str) or not _SAFE_NAME.fullmatch(value):
                raise ValueError(f"{what} of a ResultSpec names a file or folder under the results root: letters, "
                                 f"digits, '.', '_' and '-' only, not starting with '.', got {value!r}.")
        if not self.units or len(set(self.units)) != len(self.units):
            raise ValueError(f"a ResultSpec needs at least one unit, each once, got {self.units!r}.")
        for what, columns in (("keys", self.keys), ("values", self.values), ("extras", self.extras)):
            if isinstance(columns, str):
                raise TypeError(f"{what} of a ResultSpec must be a tuple of column names, got the string {columns!r} "
                                f"(read letter by letter); write ({columns!r},).")
            if not isinstance(columns, (tuple, list)) or not (columns or what == "extras") \
                    or not all(isinstance(c, str) for c in columns):
                raise ValueError(f"{what} of a ResultSpec must be a non-empty tuple of column names, got {columns!r}.")
            if len(set(columns)) != len(columns):
                raise ValueError(f"{what} of a ResultSpec names each column once, got {columns!r}; drop the repeated "
                                 "names.")
        named = (*self.keys, *self.values, *self.extras)
        if len(set(named)) != len(named) or "unit" in named:
            raise ValueError(f"keys, values and extras of a ResultSpec are distinct columns, none named 'unit' (added "
                             f"by build_results), got keys={self.keys!r}, values={self.values!r}, "
                             f"extras={self.extras!r}.")
        if isinstance(self.digits, bool) or not isinstance(self.digits, int) or not 1 <= self.digits <= 17:
            raise ValueError(f"digits (significant digits of the floats written) must be an integer from 1 to 17, "
                             f"got {self.digits!r}.")
        if isinstance(self.tolerance, bool) or not isinstance(self.tolerance, numbers.Real) \
                or not 0 <= self.tolerance < math.inf:
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance!r}.")
        for what, function, signature in (("compute", self.compute, "compute(unit, device, progress) -> DataFrame"),
                                          ("recompute", self.recompute, "recompute(rows, device) -> DataFrame")):
            if not callable(function):
                raise TypeError(f"{what} of a ResultSpec must be a function {signature}, got "
                                f"{type(function).__name__} {function!r}; pass the function itself.")
        config_hash(self.config)  # JSON-able, finite, string keys

    @property
    def config_hash(self) -> str:
        """``config_hash(self.config)``."""
        return config_hash(self.config)


_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


def _json_default(value):
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    raise TypeError(f"a result's config holds only JSON values (numbers, strings, lists, dicts), got "
                    f"{type(value).__name__}: {value!r}")


def config_hash(config: dict) -> str:
    """sha256 (first 16 hex digits) of the canonical JSON of ``config`` (sorted keys, no spaces).

    Numpy numbers count as the Python numbers they equal.

    Raises:
        TypeError: ``config`` is not a dict, or holds a value JSON cannot hold, or a mapping key that is not a string
            (JSON would write ``1`` as ``"1"``: ``{1: "a"}`` and ``{"1": "a"}`` would share a hash).
        ValueError: it holds NaN or an infinity (JSON has neither; a NaN would also never equal itself).
    """
    if not isinstance(config, dict):
        raise TypeError(f"a result's config is a dict of JSON values, got {type(config).__name__}.")
    for _ in json_leaves(config, "config", "a result's"):  # string keys only
        pass
    try:
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False, default=json_default)
    except TypeError as err:
        raise TypeError(f"a result's config holds only JSON values (numbers, strings, lists, dicts): {err}") from None
    except ValueError:
        raise ValueError(f"a result's config must hold finite numbers only (JSON has no NaN or infinity), got "
                         f"{config!r}.") from None
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def results_root(root: str | os.PathLike | None = None) -> Path:
    """The results' folder: ``root``, else ``$ATTRBOUND_RESULTS``, else ``<project>/results``.

    Raises:
        TypeError: ``root`` is not a string, a path or None.
        ValueError: ``root`` is an empty string.
    """
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root (the results' folder) must be a string, a pathlib.Path or None, got "
                        f"{type(root).__name__}.")
    if isinstance(root, str) and not root.strip():
        raise ValueError("root (the results' folder) is an empty string (an unset shell variable?); pass the folder, "
                         "or None for the committed results.")
    return Path(root if root is not None else os.environ.get(RESULTS_ENV) or RESULTS_ROOT)


def _check_spec(spec) -> ResultSpec:
    """``spec`` if it is a ``ResultSpec`` (a result's module holds one: ``attrbound_lite.book.budget.SPEC``)."""
    if not isinstance(spec, ResultSpec):
        raise TypeError(f"spec must be a ResultSpec (e.g. attrbound_lite.book.budget.SPEC; `attrbound results list` "
                        f"names them), got {type(spec).__name__} {spec!r:.60}.")
    return spec


def _command(spec: ResultSpec, root: Path) -> str:
    command = BUILD_COMMAND.format(name=spec.name)
    return command if root.resolve() == RESULTS_ROOT.resolve() else f"{command} --root {root}"


def _code_digest(modules: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(modules):
        digest.update(name.encode() + b"\0" + inspect.getsource(importlib.import_module(name)).encode() + b"\0")
    return digest.hexdigest()[:16]


def _versions() -> dict:
    from . import __version__

    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "attrbound_lite": __version__}


def _hardware(device: torch.device) -> dict:
    from .zoo import _hardware as hardware

    return hardware(device)


def _csv(frame: pd.DataFrame, digits: int = 17, exact: Sequence[str] = ()) -> bytes:
    """The bytes ``rows.csv`` holds: floats with ``digits`` significant digits, ``exact``'s with 17.

    The keys are written in full, so that they read back exactly and match the rows a recomputation gives.
    """
    if digits < 17:
        frame = frame.copy()
        for column in frame.columns:
            if column not in exact and pd.api.types.is_float_dtype(frame[column]):
                frame[column] = frame[column].map(lambda v: format(v, f".{digits}g"))
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.17g", lineterminator="\n")
    return buffer.getvalue().encode()


# read_csv's default missing-value strings: they still mean NaN in the columns that are not text
_NA_STRINGS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
               "NA", "NULL", "NaN", "None", "n/a", "nan", "null")


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    """Each column's type as a manifest records it.

    ``"str"`` for text (every value a string, none missing), else the pandas dtype's name (such columns are read back
    by read_csv's inference).
    """
    kinds = {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.infer_dtype(values, skipna=False) == "string" and not values.isna().any():
            kinds[str(column)] = "str"
        else:
            name = str(values.dtype)
            kinds[str(column)] = "object" if name in ("str", "string") else name
    return kinds


def _read_csv(path: Path, dtypes: dict | None = None) -> pd.DataFrame:
    """A rows file, read with its column types.

    ``unit`` and the columns ``dtypes`` marks ``"str"`` are text, as written (no number or NaN is inferred from them);
    the other columns are read as read_csv infers them.
    """
    text = {"unit", *(column for column, kind in (dtypes or {}).items() if kind == "str")}
    columns = pd.read_csv(path, nrows=0).columns
    return pd.read_csv(path, dtype={c: str for c in columns if c in text}, keep_default_na=False,
                       na_values={c: list(_NA_STRINGS) for c in columns if c not in text})


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _checked_frame(spec: ResultSpec, unit: str, frame, what: str = "compute") -> pd.DataFrame:
    """A unit's computed rows: a DataFrame with the spec's columns, each row's keys once, numbers as values."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{spec.name}: {what}({unit!r}) must return a pandas DataFrame, got {type(frame).__name__}.")
    missing = [c for c in (*spec.keys, *spec.values, *spec.extras) if c not in frame.columns]
    if missing:
        raise ValueError(f"{spec.name}: {what}({unit!r}) returned no column {missing} (its columns: "
                         f"{list(frame.columns)}); the spec's keys are {list(spec.keys)}, its values "
                         f"{list(spec.values)}, its extras {list(spec.extras)}.")
    if frame.duplicated(list(spec.keys)).any():
        raise ValueError(f"{spec.name}: {what}({unit!r}) returned rows with the same keys {list(spec.keys)}: a "
                         "row must be identified by its keys, or verify_results cannot find it again.")
    _check_values(spec, frame, f"{spec.name}: {what}({unit!r}) returned", "return numbers (or booleans) there, or "
                  "make the column a key or an extra of the spec")
    return frame


def _not_numbers(values: pd.Series) -> list:
    """The first few entries of ``values`` that are not numbers (nor booleans, nor missing)."""
    bad = []
    for value in values:
        if value is None or value is pd.NA:  # missing, as NaN is
            continue
        try:
            float(value)
        except (TypeError, ValueError):
            if value in bad:
                continue
            bad.append(value)
            if len(bad) == 3:
                break
    return bad


def _check_values(spec: ResultSpec, frame: pd.DataFrame, what: str, fix: str) -> None:
    """The spec's value columns hold numbers: ``verify_results`` compares them within the tolerance."""
    for column in spec.values:
        bad = [] if pd.api.types.is_numeric_dtype(frame[column]) else _not_numbers(frame[column])
        if bad:
            raise ValueError(f"{what} the value column {column!r} with entries that are not numbers ({bad}); "
                             f"verify_results compares values as numbers within the tolerance: {fix}.")


_NUMERIC_KINDS = re.compile(r"bool|u?int(8|16|32|64)?|float(16|32|64)?")


def _check_dtypes(frame: pd.DataFrame, dtypes: dict | None, what: str, fix: str) -> None:
    """The recorded column types agree with the rows read with them: a column recorded as numbers reads as numbers.

    Only the text columns (``"str"``) are read as recorded; a text column recorded as anything else is read by
    inference, which turns ``"NA"`` and ``"null"`` into NaN. Its other text stays text, and is named here.
    """
    for column, kind in (dtypes or {}).items():
        if column in frame.columns and _NUMERIC_KINDS.fullmatch(kind) \
                and not pd.api.types.is_numeric_dtype(frame[column]):
            raise ValueError(f"{what}: column {column!r} is recorded as {kind} but holds text "
                             f"({_not_numbers(frame[column])}): its recorded types were edited (a text column read "
                             f"as numbers loses 'NA' and 'null' to NaN); {fix}.")


def _dtypes_digest(dtypes) -> str:
    """sha256 (16 hex digits) of the canonical JSON of a manifest's ``dtypes``."""
    return hashlib.sha256(json.dumps(dtypes, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def _read_part(spec: ResultSpec, parts: Path, unit: str, command: str) -> tuple[dict, pd.DataFrame]:
    """A unit's part as a build wrote it (``<unit>.json``, ``<unit>.csv``), checked before it is reused.

    Returns:
        ``(record, rows)``: the record (``seconds``, ``dtypes``) and the rows, with the spec's columns.

    Raises:
        ValueError: an unreadable record or table, or rows that are not the unit's (columns, keys, value types);
            the message names the part and the fix.
    """
    table, record_path = parts / f"{unit}.csv", parts / f"{unit}.json"
    fix = (f"delete {table} and {record_path.name} beside it to compute the unit again, or rebuild with "
           f"`{command} --force`")
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{spec.name}: the part {record_path} is not readable ({err}); {fix}.") from None
    dtypes = record.get("dtypes") if isinstance(record, dict) else None
    seconds = record.get("seconds") if isinstance(record, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not (
            dtypes is None or (isinstance(dtypes, dict) and all(isinstance(v, str) for v in dtypes.values()))):
        raise ValueError(f"{spec.name}: the part {record_path} is not a part's record (its seconds and column "
                         f"types); {fix}.")
    try:
        frame = _read_csv(table, dtypes)
    except (OSError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{spec.name}: the part {table} is not a readable table ({first}); {fix}.") from None
    columns = ["unit", *spec.keys, *spec.values, *spec.extras]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{spec.name}: the part {table} lacks the columns {missing} (it has "
                         f"{list(frame.columns)[:8]}): it is damaged or belongs to another spec; {fix}.")
    if not (frame["unit"] == unit).all():
        raise ValueError(f"{spec.name}: the part {table} holds rows of other units "
                         f"({sorted(set(frame['unit']) - {unit})[:3]}); {fix}.")
    if frame.duplicated(list(spec.keys)).any():
        raise ValueError(f"{spec.name}: the part {table} holds rows with the same keys {list(spec.keys)}; {fix}.")
    _check_dtypes(frame, dtypes, f"{spec.name}: the part {table}", fix)
    _check_values(spec, frame, f"{spec.name}: the part {table} holds", fix)
    return record, frame


def build_results(spec: ResultSpec, *, root: str | os.PathLike | None = None,
                  device: str | torch.device | None = None, progress: bool = True, force: bool = False) -> Path:
    """Compute ``spec``'s units (resuming from the parts already written) and write its rows and manifest.

    Args:
        spec: the result.
        root: the results' folder (``results_root``).
        device: where to compute (``None``: CUDA if available, else CPU).
        progress: show a progress bar over the units.
        force: recompute every unit, even one already written.

    A part reused is checked first (``_read_part``: its record, its columns, keys and value types); a damaged one is
    named with the fix (delete it, or ``force``). A part whose record is missing is computed again.

    Returns:
        The result's folder.

    Raises:
        ValueError: a part to reuse is damaged; ``compute`` returns rows without the spec's columns, with repeated
            keys or with values that are not numbers.
    """
    _check_spec(spec)
    root = results_root(root)
    folder, device = root / spec.name, resolve_device(device)
    parts = folder / "parts" / spec.config_hash  # parts of another configuration are never mixed in
    done = set() if force else {p.stem for p in parts.glob("*.csv") if p.with_suffix(".json").is_file()}
    for unit in tqdm(spec.units, desc=spec.name, disable=not progress):
        if unit in done:
            continue
        started = time.perf_counter()
        frame = _checked_frame(spec, unit, spec.compute(unit, device, progress)).assign(unit=unit)
        write_json(parts / f"{unit}.json", {"seconds": time.perf_counter() - started, "dtypes": _dtypes(frame)})
        _write_bytes(parts / f"{unit}.csv", _csv(frame, spec.digits, spec.keys))
    read = {unit: _read_part(spec, parts, unit, _command(spec, root)) for unit in spec.units}
    records = {unit: record for unit, (record, _) in read.items()}
    rows = pd.concat([frame for _, frame in read.values()], ignore_index=True)[
        ["unit", *spec.keys, *spec.values, *spec.extras]]
    data = _csv(rows, spec.digits, spec.keys)
    seconds = {unit: record["seconds"] for unit, record in records.items()}
    manifest = {"name": spec.name, "title": spec.title, "config": spec.config, "config_hash": spec.config_hash,
                "keys": list(spec.keys), "values": list(spec.values), "extras": list(spec.extras),
                "tolerance": spec.tolerance,
                "n_rows": len(rows), "rows_sha256": hashlib.sha256(data).hexdigest(), "dtypes": _dtypes(rows),
                "dtypes_sha256": _dtypes_digest(_dtypes(rows)),
                "code_digest": _code_digest(spec.modules), "versions": _versions(), "hardware": _hardware(device),
                "seconds": {"total": sum(seconds.values()), "per_unit": seconds},
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "command": _command(spec, root)}
    _write_bytes(folder / "rows.csv", data)
    write_json(folder / "manifest.json", manifest)
    return folder


def read_manifest(spec: ResultSpec, root: str | os.PathLike | None = None) -> dict:
    """The manifest of ``spec``'s committed result, checked against the current configuration.

    Raises:
        FileNotFoundError: the result was never built there (the message gives the command that builds it).
        ValueError: the manifest is unreadable, belongs to another result or configuration, or was edited (its
            config or dtypes do not match their hashes).
    """
    _check_spec(spec)
    root = results_root(root)
    path, command = root / spec.name / "manifest.json", _command(spec, root)
    if not path.is_file():
        raise FileNotFoundError(f"the result {spec.name!r} ({spec.title}) is missing: no {path}. Build it with "
                                f"`{command}` (resumable), or restore it with `git checkout -- {root / spec.name}`.")
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path} is not a readable manifest ({err}); restore it with `git checkout -- {path}` or "
                         f"rebuild with `{command}`.") from None
    if not isinstance(manifest, dict) or manifest.get("name") != spec.name:
        raise ValueError(f"{path} is not the manifest of {spec.name!r}; restore it or rebuild with `{command}`.")
    fields = {"n_rows": int, "rows_sha256": str, "seconds": dict, "hardware": dict, "config": dict}
    wrong = [k for k, kind in fields.items() if not isinstance(manifest.get(k), kind)]
    if "dtypes" in manifest and not (isinstance(manifest["dtypes"], dict)  # optional: older results have none
                                     and all(isinstance(v, str) for v in manifest["dtypes"].values())):
        wrong.append("dtypes")
    if wrong:
        raise ValueError(f"{path} lacks {wrong} (or holds another type there): it was altered or cut short; restore "
                         f"it with `git checkout -- {root / spec.name}` or rebuild with `{command}`.")
    if "dtypes_sha256" in manifest and _dtypes_digest(manifest.get("dtypes")) != manifest["dtypes_sha256"]:
        raise ValueError(f"{path}: its dtypes do not hash to its dtypes_sha256: the manifest was edited (the dtypes "
                         f"decide which columns are read as text); restore it with "
                         f"`git checkout -- {root / spec.name}` or rebuild with `{command}`.")
    if config_hash(manifest["config"]) != manifest.get("config_hash"):
        raise ValueError(f"{path}: its config does not hash to its config_hash: the manifest was edited; restore it "
                         f"with `git checkout -- {root / spec.name}` or rebuild with `{command}`.")
    if manifest.get("config_hash") != spec.config_hash:
        raise ValueError(f"{spec.name!r} in {root} was computed with another configuration (hash "
                         f"{manifest.get('config_hash')}, the code's is {spec.config_hash}): its numbers are not "
                         f"the ones the code asks for. Rebuild it with `{command} --force`.")
    return manifest


def load_results(spec: ResultSpec, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The committed rows of ``spec``, after checking them against their manifest.

    Returns:
        The rows: ``unit``, the spec's ``keys``, ``values`` and ``extras``; ``.attrs["manifest"]`` holds the
        manifest. ``unit`` and the columns the manifest's ``dtypes`` records as text are read as written (strings,
        no NaN inferred); the others as read_csv infers them (every column of a manifest without ``dtypes`` but
        ``unit``).

    Raises:
        FileNotFoundError: the result or its rows are missing (the message gives the command that rebuilds them).
        ValueError: the rows were altered since they were built, the manifest does not match (``read_manifest``),
            or its ``dtypes`` record a column as numbers that holds text.
    """
    manifest = read_manifest(spec, root)
    root = results_root(root)
    path, command = root / spec.name / "rows.csv", _command(spec, root)
    if not path.is_file():
        raise FileNotFoundError(f"the rows of {spec.name!r} are missing: no {path}. Rebuild them with `{command}`.")
    if file_digest(path) != manifest["rows_sha256"]:
        raise ValueError(f"{path} was altered: its sha256 is not the manifest's. Restore it with "
                         f"`git checkout -- {path}` or rebuild it with `{command} --force`.")
    rows = _read_csv(path, manifest.get("dtypes"))
    _check_dtypes(rows, manifest.get("dtypes"), f"{root / spec.name / 'manifest.json'} and {path}",
                  f"restore the manifest with `git checkout -- {root / spec.name}` or rebuild with `{command} --force`")
    columns = ["unit", *spec.keys, *spec.values, *spec.extras]
    if list(rows.columns) != columns or len(rows) != manifest["n_rows"]:
        raise ValueError(f"{path} holds {len(rows)} rows of columns {list(rows.columns)}, but {spec.name!r} has "
                         f"{manifest['n_rows']} rows of {columns}: it was edited along with its manifest. Restore "
                         f"both with `git checkout -- {root / spec.name}` or rebuild with `{command} --force`.")
    rows.attrs["manifest"] = manifest
    return rows


def sample_seed() -> int:
    """A seed that changes with the commit: the first 12 hex digits of ``git rev-parse HEAD`` (0 outside git)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 0
    return int(head[:12] or "0", 16)


def within_tolerance(difference, tolerance: float):
    """``|difference| <= tolerance``, rounding forgiven.

    A difference equal to the tolerance counts as within it, also where rounding makes it a little larger: the
    values are stored in float32, where 0.35 - 0.32 is 0.0300000012 (a slack of 1e-5 of the tolerance).
    """
    return abs(difference) <= tolerance * (1 + 1e-5) + 1e-12


def verify_results(spec: ResultSpec, n: int = 8, seed: int = 0, *, root: str | os.PathLike | None = None,
                   device: str | torch.device | None = None) -> pd.DataFrame:
    """Recompute ``n`` rows of the committed result, drawn with ``seed``, and compare them with the committed values.

    Args:
        spec: the result.
        n: the rows to recompute (all if fewer).
        seed: the draw's seed (``sample_seed()`` draws a new sample for every commit).
        root: the results' folder.
        device: where to recompute.

    Returns:
        One row per (recomputed row, value): ``unit``, the keys, ``value`` (the column), ``committed``,
        ``recomputed``, ``difference`` and ``ok`` (``|difference| <= spec.tolerance``, or equal values: a NaN
        recomputed as NaN and an infinity recomputed as the same infinity agree). The recomputed floats are rounded
        as ``rows.csv`` stores them (``spec.digits`` significant digits), so that a float32 value recomputed exactly
        agrees with its stored digits at any tolerance.

    Raises:
        ValueError: ``n`` is not a positive integer, a committed or recomputed value column holds entries that are
            not numbers, or ``recompute`` returns rows without the spec's columns.
    """
    _check_spec(spec)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the rows to recompute) must be a positive integer, got {n!r}.")
    seed = check_seed(seed, "seed (of the rows' draw, e.g. sample_seed())")
    rows = load_results(spec, root)
    _check_values(spec, rows, f"{spec.name}: the committed rows hold", "make compute return numbers there (or "
                  f"move the column to the keys or extras) and rebuild with `{_command(spec, results_root(root))} "
                  "--force`")
    drawn = rows.sample(n=min(int(n), len(rows)), random_state=np.random.RandomState(seed % 2**32))
    device, reports = resolve_device(device), []
    for _, part in drawn.groupby("unit", sort=True):
        again = _checked_frame(spec, str(part["unit"].iloc[0]), spec.recompute(part.reset_index(drop=True), device),
                               "recompute")
        again = again.assign(**{value: _as_written(again[value], spec.digits) for value in spec.values})
        merged = part.merge(again[[*spec.keys, *spec.values]], on=list(spec.keys), suffixes=("", "_again"),
                            how="left", validate="one_to_one")
        for value in spec.values:
            reports.append(merged[["unit", *spec.keys]].assign(
                value=value, committed=merged[value].astype(float), recomputed=merged[f"{value}_again"].astype(float)))
    report = pd.concat(reports, ignore_index=True)
    report["difference"] = report["recomputed"] - report["committed"]
    both_nan = report["committed"].isna() & report["recomputed"].isna()
    equal = report["committed"] == report["recomputed"]  # inf recomputed as inf (their difference is NaN)
    report["ok"] = within_tolerance(report["difference"], spec.tolerance) | both_nan | equal
    return report


def _as_written(values: pd.Series, digits: int) -> pd.Series:
    """Recomputed values as ``rows.csv`` stores them: floats with ``digits`` significant digits (``_csv``)."""
    if digits >= 17 or not pd.api.types.is_float_dtype(values):
        return values
    return values.map(lambda v: float(format(v, f".{digits}g"))).astype(float)


def _describe(report: pd.DataFrame) -> str:
    bad = report[~report["ok"]]
    return "; ".join(f"{r.unit} {r.value}: committed {r.committed:.6g}, recomputed {r.recomputed:.6g}"
                     for r in bad.itertuples()) or "all rows agree"


def check_verified(spec: ResultSpec, report: pd.DataFrame) -> None:
    """Raise ``AssertionError`` naming every recomputed value beyond the tolerance (``verify_results``' report)."""
    _check_spec(spec)
    if not isinstance(report, pd.DataFrame) or "ok" not in report:
        raise TypeError(f"report must be verify_results' table (a DataFrame with an 'ok' column), got "
                        f"{type(report).__name__}.")
    if not report["ok"].all():
        raise AssertionError(f"{spec.name}: {int((~report['ok']).sum())} of {len(report)} recomputed values differ "
                             f"from the committed ones by more than {spec.tolerance:g}: {_describe(report)}. If the "
                             f"code changed on purpose, rebuild with `{BUILD_COMMAND.format(name=spec.name)} --force`.")
