import sys
import textwrap

import pytest

from sgbench.errors import UsageError, UserError
from sgbench.registry import builtin_names, load_method, method_names

METHOD_FILE = textwrap.dedent('''
    from dataclasses import dataclass
    from sgbench.method import FixedSurrogate

    class Wide(FixedSurrogate):
        citation = "test"
        shape = "sigmoid"

        @dataclass
        class Params:
            alpha: float = 1.0
''')


def test_builtins_are_discovered_from_the_methods_folder():
    assert {"rect", "triangle", "sigmoid", "atan", "superspike"} <= set(builtin_names())
    assert load_method("atan").name == "atan"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UsageError, match="did you mean 'atan'"):
        load_method("atnn")


def test_method_from_a_python_file(tmp_path):
    path = tmp_path / "wide_sigmoid.py"
    path.write_text(METHOD_FILE)
    cls = load_method(str(path))
    assert cls.name == "wide_sigmoid" and cls().shape_params() == [1.0]


def test_broken_method_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import not_a_module_anywhere\n")
    with pytest.raises(UserError, match="cannot import method file"):
        load_method(str(path))


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) declaring an entry point."""
    (tmp_path / "my_sg_plugin.py").write_text(METHOD_FILE)
    info = tmp_path / "my_sg_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-sg-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[sgbench.methods]\nwide = my_sg_plugin:Wide\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("my_sg_plugin", None)


def test_entry_point_plugins_are_registered_and_can_be_switched_off(installed_plugin, monkeypatch):
    assert "wide" in method_names()
    assert load_method("wide").name == "wide"
    monkeypatch.setenv("SGBENCH_NO_ENTRY_POINTS", "1")
    assert "wide" not in method_names()
    with pytest.raises(UsageError):
        load_method("wide")


def test_source_hash_covers_the_method_files_a_method_extends():
    import hashlib
    import inspect
    from pathlib import Path

    from sgbench.registry import load_method, method_source_sha256
    st_asg, a2sg = load_method("st_asg"), load_method("a2sg")
    own = hashlib.sha256(Path(inspect.getfile(st_asg)).read_bytes()).hexdigest()
    both = hashlib.sha256(Path(inspect.getfile(st_asg)).read_bytes()
                          + Path(inspect.getfile(a2sg)).read_bytes()).hexdigest()
    assert method_source_sha256(st_asg) == both != own
    assert method_source_sha256(a2sg) == hashlib.sha256(
        Path(inspect.getfile(a2sg)).read_bytes()).hexdigest()
