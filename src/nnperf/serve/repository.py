"""The model repository: a folder of models whose names cannot reach outside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nnperf.errors import InvalidInputError, ModelLoadError, NotFoundError
from nnperf.serve.settings import _NAME_RE, ModelSettings, check_model_name

__all__ = ["ModelRepository"]


class ModelRepository:
    """A folder of models; names cannot reach outside it.

    A model ``NAME`` is, in this order of lookup, ``NAME/config.json`` (model settings whose
    ``model`` is a path relative to ``NAME/`` or ``zoo:...``), ``NAME/model.onnx``,
    ``NAME/<version>/model.onnx`` (Triton layout, highest numeric version) or ``NAME.onnx``.
    """

    def __init__(self, root: str | Path) -> None:
        p = Path(root)
        if not p.is_dir():
            raise InvalidInputError(
                f"model repository {str(p)!r} is not a folder; expected a folder of models"
            )
        self.root = p.resolve()

    def _inside(self, path: Path, name: str) -> Path:
        resolved = path.resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise NotFoundError(
                f"model {name!r} resolves outside the model repository; refusing to load it"
            )
        return resolved

    def names(self) -> list[str]:
        """Names of the models found in the repository, sorted."""
        found = set()
        for entry in self.root.iterdir():
            name = entry.name[:-5] if entry.name.endswith(".onnx") else entry.name
            if not _NAME_RE.match(name) or ".." in name:
                continue
            try:
                self.locate(name)
            except (NotFoundError, InvalidInputError):
                continue  # not a model, or one that escapes the repository
            except ModelLoadError:
                pass  # a model entry that is broken: listed, and its load reports why
            found.add(name)
        return sorted(found)

    def locate(self, name: str) -> tuple[Path, dict[str, Any]]:
        """The model file of ``name`` and its settings from ``config.json`` (or ``{}``).

        Raises:
            InvalidInputError: an unsafe name.
            NotFoundError: no such model, or it resolves outside the repository.
        """
        check_model_name(name)
        folder = self.root / name
        if folder.is_dir():
            folder = self._inside(folder, name)
            settings: dict[str, Any] = {}
            cfg = folder / "config.json"
            if cfg.is_file():
                try:
                    settings = json.loads(cfg.read_text())
                except (OSError, UnicodeDecodeError, RecursionError, ValueError) as exc:
                    raise ModelLoadError(f"{cfg}: not valid JSON: {exc}") from None
                if not isinstance(settings, dict):
                    raise ModelLoadError(f"{cfg}: expected a JSON object of model settings")
                src = settings.get("model")
                if isinstance(src, str) and src.startswith("zoo:"):
                    return Path(src), settings
                if isinstance(src, str):
                    return self._inside(folder / src, name), settings
            direct = folder / "model.onnx"
            if direct.is_file():
                return self._inside(direct, name), settings
            versions = sorted(
                (int(v.name), v) for v in folder.iterdir() if v.is_dir() and v.name.isdigit()
            )
            for _, v in reversed(versions):
                if (v / "model.onnx").is_file():
                    return self._inside(v / "model.onnx", name), settings
        single = self.root / f"{name}.onnx"
        if single.is_file():
            return self._inside(single, name), {}
        raise NotFoundError(
            f"model {name!r} is not in the repository {str(self.root)!r}; expected "
            f"{name}/model.onnx, {name}/<version>/model.onnx or {name}.onnx (available: "
            f"{self.names()})"
        )

    def settings(self, name: str, *, base: ModelSettings) -> ModelSettings:
        """The settings to serve ``name`` with: ``base`` overridden by its ``config.json``."""
        path, extra = self.locate(name)
        extra = {k: v for k, v in extra.items() if k != "model"}
        extra.pop("name", None)
        source = str(path)
        return ModelSettings.from_dict(
            {**extra, "name": name, "model": source}, base=base.replace(name=name, model=source)
        )
