"""The layout's one rule: imports run ``cli -> app | pipelines | infra -> core``, never back.

Every module's AST is walked, imports inside functions included (a lazy import is still a
dependency), so a wrong-way import fails here whatever code path it sits on.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "app", "pipelines", "infra", "core")
# What each top-level package may import of the others (itself always).
ALLOWED: dict[str, set[str]] = {
    "cli": {"app", "pipelines", "infra", "core"},
    "app": {"core"},
    "pipelines": {"core"},
    "infra": {"core"},
    "core": set(),
}


def wrong_way_imports(root: Path) -> list[str]:
    """``path:line imports module`` for every import that runs against the layout."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top in PACKAGES and top != package and top not in ALLOWED[package]:
                        found.append(f"{path.relative_to(root)}:{node.lineno} imports {module}")
    return found


def test_layout_every_import_runs_one_way() -> None:
    assert wrong_way_imports(REPO) == []


@pytest.mark.parametrize(
    ("package", "line"),
    [
        ("core", "from app.errors import ServiceError"),
        ("app", "from pipelines.batch import score_file"),
        ("pipelines", "import infra.plan"),
        ("infra", "from cli.main import main"),
        ("app", "    from pipelines.registry import promote"),  # a lazy import counts too
    ],
)
def test_layout_check_fails_on_a_wrong_way_import(tmp_path: Path, package: str, line: str) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    body = f"def f() -> None:\n{line}\n" if line.startswith(" ") else f"{line}\n"
    (tmp_path / package / "module.py").write_text(body)

    assert wrong_way_imports(tmp_path) == [
        f"{package}/module.py:{1 + line.startswith(' ')} imports {line.split()[1]}"
    ]


def test_layout_serving_runs_without_pipelines_and_infra(logistic_bundle: Path) -> None:
    """The serving image ships core/, app/ and cli/ only: `serve` must get as far as loading
    the model with pipelines, infra, MLflow and pandas unimportable."""
    code = textwrap.dedent(
        f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("pipelines", "infra", "mlflow", "pandas", "pulumi"):
                    raise ImportError(f"{{name}} is not in the serving image")
        sys.meta_path.insert(0, Block())
        from app.serve import load_settings
        from app.service import load_service_model
        from app.runtime import runtime_model
        from cli.main import build_parser
        args = build_parser().parse_args(["serve", "--model", {str(logistic_bundle)!r}])
        settings = load_settings(model_uri=args.model)
        model = load_service_model(settings)
        runtime_model(model, settings)
        import app.main
        app.main.create_app(settings, model)
        print("ok", model.version)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok test-logistic-0")
