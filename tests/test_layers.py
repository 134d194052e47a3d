"""The package's layers: every module imports only from layers below its own (or from its own package), so the
architecture the folder names promise is the one the code has, and no import cycle can form between layers."""

import ast
from pathlib import Path

import betavae

ROOT = Path(betavae.__file__).parent
LAYERS = [  # lowest first; the layer of a module is that of its top-level module or package
    {"errors", "version"},
    {"atomic", "checksums"},  # file writing and digests: its refusals are one-line errors
    {"data"},
    {"model"},  # built from any object with the fields it needs (networks.Architecture), so below config
    {"config"},  # holds the objective's settings classes
    {"training"},
    {"samplers"},  # below runs, so that Run.sample can draw from them
    {"runs"},
    {"pictures", "evaluation"},  # siblings: neither imports the other
    {"api"},
    {"sweep"},
    {"arguments"},  # the command line's options and argparse types
    {"cli", "__init__"},
    {"__main__"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def top_level(module: str) -> str:
    """betavae.training.folder -> training."""
    return module.split(".")[1] if module.count(".") else "__init__"


def imported_modules(path: Path) -> set[str]:
    """Every betavae module a file imports, at the top or inside a function, as a dotted name."""
    package = ["betavae", *path.relative_to(ROOT).with_suffix("").parts]
    package = package[:-1]  # the package the file is in
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            if module.startswith("betavae"):
                found |= {f"{module}.{alias.name}" for alias in node.names} if module == "betavae" else {module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("betavae")}
    return found


def test_every_module_has_a_layer():
    names = {p.relative_to(ROOT).parts[0].removesuffix(".py") for p in ROOT.rglob("*.py")}
    assert names - {"assets"} <= set(LEVEL), names - set(LEVEL)


def test_no_module_imports_a_module_above_it_or_beside_it():
    upward = []
    for path in ROOT.rglob("*.py"):
        own = path.relative_to(ROOT).parts[0].removesuffix(".py")
        for module in imported_modules(path):
            target = top_level(module)
            if target != own and target in LEVEL and LEVEL[target] >= LEVEL[own]:
                upward.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not upward, upward
