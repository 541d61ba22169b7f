"""Method discovery and identity: built-ins, entry points and files; names that cannot collide,
a listing that imports nothing, broken plugins that break nothing else, and the public API."""
import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sgbench import methods as builtin_package
from sgbench.cli import app
from sgbench.errors import UsageError, UserError
from sgbench.registry import builtin_names, describe_all, load_method, method_names

runner = CliRunner()
METHOD_FILE = textwrap.dedent('''
    from dataclasses import dataclass
    from sgbench.api import FixedSurrogate, param

    class Wide(FixedSurrogate):
        {name}
        citation = "test"
        kinds = ("fixed",)
        fidelity = "paper"
        shape = "sigmoid"

        @dataclass
        class Params:
            alpha: float = param(1.0, gt=0)
''')


def _method(path: Path, name_line: str = "") -> Path:
    path.write_text(METHOD_FILE.format(name=name_line))
    return path


def test_builtins_are_discovered_from_the_methods_folder():
    assert {"rect", "triangle", "sigmoid", "atan", "superspike"} <= set(builtin_names())
    cls = load_method("atan")
    assert cls.name == "atan" and cls.origin.kind == "built-in"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UsageError, match="did you mean 'atan'"):
        load_method("atnn")


def test_a_file_method_is_named_by_its_class_or_else_its_file(tmp_path):
    assert load_method(str(_method(tmp_path / "wide_sigmoid.py"))).name == "wide_sigmoid"
    named = load_method(str(_method(tmp_path / "other.py", 'name = "wide2"')))
    assert named.name == "wide2" and named.origin.kind == "file"


@pytest.mark.parametrize("body,message", [
    ("import not_a_module_anywhere\n", "cannot import method file"),
    ("import sys\nsys.exit(3)\n", "SystemExit"),
])
def test_a_broken_method_file_is_one_clear_error(tmp_path, body, message):
    path = tmp_path / "broken.py"
    path.write_text(body)
    with pytest.raises(UserError, match=message):
        load_method(str(path))


def test_a_file_named_like_a_builtin_is_refused_naming_both(tmp_path):
    source = (Path(builtin_package.__file__).parent / "triangle.py").read_text()
    changed = source.replace("return [self.params.width, self.params.width, self.params.height]",
                             "return [self.params.width, self.params.width, 2 * self.params.height]")
    assert changed != source
    (tmp_path / "triangle.py").write_text(changed)
    result = runner.invoke(app, ["run", "--method", str(tmp_path / "triangle.py"), "--task",
                                 "synthetic", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(tmp_path / "triangle.py") in result.output and "built-in" in result.output
    assert not (tmp_path / "runs").exists()


def test_the_builtins_own_file_by_path_is_the_builtin():
    path = Path(builtin_package.__file__).parent / "atan.py"
    assert load_method(str(path)) is load_method("atan")


def _dist(root: Path, name: str, entry_points: str) -> None:
    info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[sgbench.methods]\n{entry_points}\n")


@pytest.fixture
def plugin_root(tmp_path, monkeypatch):
    """A folder on sys.path for installed distributions (dist-info) declaring entry points."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("my_sg_plugin")]:
        sys.modules.pop(name)


def test_an_entry_point_has_the_same_name_as_its_file_and_records_its_package(plugin_root,
                                                                             monkeypatch):
    _method(plugin_root / "my_sg_plugin.py", 'name = "wide"')
    _dist(plugin_root, "my-sg-plugin", "wide = my_sg_plugin:Wide")
    cls = load_method("wide")
    assert cls.name == "wide" and cls.origin.package == "my-sg-plugin"
    assert cls.origin.version == "0.1"
    by_path = load_method(str(plugin_root / "my_sg_plugin.py"))
    assert by_path.name == "wide"  # the same name, and not a second method of that name
    rows = {r["name"]: r for r in describe_all()}
    assert "my-sg-plugin 0.1" in rows["wide"]["origin"] and rows["wide"]["error"] is None
    monkeypatch.setenv("SGBENCH_NO_ENTRY_POINTS", "1")
    assert "wide" not in method_names()
    with pytest.raises(UsageError):
        load_method("wide")


def test_an_entry_point_named_otherwise_than_its_method_is_an_error(plugin_root):
    _method(plugin_root / "my_sg_plugin.py")
    _dist(plugin_root, "my-sg-plugin", "wide = my_sg_plugin:Wide")
    with pytest.raises(UserError, match="name the entry point 'my_sg_plugin'"):
        load_method("wide")


def test_an_entry_point_named_like_a_builtin_is_refused_and_the_builtin_still_loads(
        plugin_root):
    _method(plugin_root / "my_sg_plugin.py", 'name = "atan"')
    _dist(plugin_root, "my-sg-plugin", "atan = my_sg_plugin:Wide")
    assert load_method("atan").origin.kind == "built-in"
    row = next(r for r in describe_all() if r["name"] == "atan" and "plugin" in r["origin"])
    assert "claims the name of sgbench's built-in 'atan'" in row["error"]


def test_a_broken_plugin_is_listed_as_broken_and_breaks_nothing_else(plugin_root):
    (plugin_root / "my_sg_plugin.py").write_text("import not_installed_anywhere\n" +
                                                 METHOD_FILE.format(name='name = "bad"'))
    _dist(plugin_root, "my-sg-plugin", "bad = my_sg_plugin:Wide")
    result = runner.invoke(app, ["list", "methods", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert "not_installed_anywhere" in rows["bad"]["error"]
    assert rows["atan"]["error"] is None and load_method("atan").name == "atan"
    with pytest.raises(UserError, match="not_installed_anywhere"):
        load_method("bad")


def test_listing_methods_imports_no_torch():
    code = ("import sys; from typer.testing import CliRunner; from sgbench.cli import app; "
            "r = CliRunner().invoke(app, ['list', 'methods']); assert r.exit_code == 0, r.output; "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_builtin_methods_import_only_the_public_api():
    allowed = {"sgbench.api", "sgbench.methods"}
    for path in Path(builtin_package.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                if name.split(".")[0] == "sgbench":
                    assert any(name == a or name.startswith(a + ".") for a in allowed), \
                        f"{path.name} imports {name}"


def test_source_hash_covers_the_method_files_a_method_extends():
    import hashlib
    import inspect

    from sgbench.registry import method_source_sha256
    st_asg, a2sg = load_method("st_asg"), load_method("a2sg")
    own = hashlib.sha256(Path(inspect.getfile(st_asg)).read_bytes()).hexdigest()
    both = hashlib.sha256(Path(inspect.getfile(st_asg)).read_bytes()
                          + Path(inspect.getfile(a2sg)).read_bytes()).hexdigest()
    assert method_source_sha256(st_asg) == both != own
    assert method_source_sha256(a2sg) == hashlib.sha256(
        Path(inspect.getfile(a2sg)).read_bytes()).hexdigest()
