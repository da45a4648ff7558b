"""Plugin discovery (lossdoctor/plugins.py), on real packages written to a temporary directory: the one rule every
registry (readers, check kinds, report and comparison formats, commands, tails) follows."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lossdoctor.plugins import DuplicatePluginError, Registry, discover


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Write a package ``name`` with ``modules`` (module name → source) under tmp_path and make it importable."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def make(name: str, modules: dict[str, str]) -> str:
        pkg = tmp_path / name
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        for module, source in modules.items():
            if module.endswith("/"):  # a subpackage
                (pkg / module).mkdir()
                (pkg / module / "__init__.py").write_text(source)
            else:
                (pkg / f"{module}.py").write_text(source)
        importlib.invalidate_caches()
        made.append(name)
        return name

    yield make
    for name in made:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


def _plugin(name: str, aliases: tuple[str, ...] = ()) -> str:
    return (
        f"from types import SimpleNamespace\n"
        f"PLUGIN = SimpleNamespace(name={name!r}, aliases={aliases!r}, module=__name__)\n"
    )


def test_private_modules_are_skipped_and_never_imported(make_package) -> None:
    boom = "raise RuntimeError('a private helper was imported by discovery')\n"
    pkg = make_package(
        "ldtest_private",
        {"alpha": _plugin("alpha"), "_helper": boom + _plugin("helper"), "_sub/": boom, "helpers": "X = 1\n"},
    )
    found = discover(pkg, "PLUGIN", "widgets")
    assert list(found) == ["alpha"]
    assert f"{pkg}._helper" not in sys.modules and f"{pkg}._sub" not in sys.modules
    assert f"{pkg}.helpers" in sys.modules  # public, imported, but defines no PLUGIN: not a plugin


def test_order_is_sorted_by_name_whatever_the_module_order(make_package) -> None:
    pkg = make_package(
        "ldtest_order", {"a_mod": _plugin("zulu"), "m_mod": _plugin("alpha", ("mike",)), "z_mod": _plugin("bravo")}
    )
    found = discover(pkg, "PLUGIN", "widgets", lambda p: (p.name, *p.aliases))
    assert list(found) == ["alpha", "bravo", "mike", "zulu"]
    assert found["mike"] is found["alpha"]
    assert found["zulu"].module == f"{pkg}.a_mod"
    assert list(discover(pkg, "PLUGIN", "widgets")) == ["alpha", "bravo", "zulu"]


def test_one_plugin_by_name_imports_only_its_module(make_package) -> None:
    boom = "raise RuntimeError('imported although another plugin was asked for')\n"
    pkg = make_package(
        "ldtest_lazy",
        {
            "eval_corpus": _plugin("eval-corpus"),
            "json": _plugin("json"),
            "markdown": boom + _plugin("markdown", ("md",)),
            "misnamed": boom + _plugin("other"),
        },
    )
    registry: Registry = Registry(pkg, "PLUGIN", "widgets", lambda p: (p.name, *p.aliases))
    assert registry.get("json").module == f"{pkg}.json"
    assert registry.get("eval-corpus").module == f"{pkg}.eval_corpus"  # dashes name modules with underscores
    assert f"{pkg}.markdown" not in sys.modules and f"{pkg}.misnamed" not in sys.modules
    # an alias, or a plugin living in a module of another name, needs the whole registry (here: the boom)
    with pytest.raises(RuntimeError, match="imported although"):
        registry.get("md")


def test_lookup_falls_back_to_discovery_and_says_none_for_unknown_names(make_package) -> None:
    pkg = make_package(
        "ldtest_fallback",
        {"first": _plugin("first"), "markdown": _plugin("markdown", ("md",)), "misnamed": _plugin("other")},
    )
    registry: Registry = Registry(pkg, "PLUGIN", "widgets", lambda p: (p.name, *p.aliases))
    assert registry.get("md").module == f"{pkg}.markdown"
    assert registry.get("other").module == f"{pkg}.misnamed"
    assert registry.get("nope") is None and registry.get("_private") is None and registry.get("a.b") is None
    assert list(registry.all()) == ["first", "markdown", "md", "other"]


def test_lookup_by_name_still_validates_the_plugin(make_package) -> None:
    from lossdoctor.plugins import PluginDeclarationError, declares

    pkg = make_package("ldtest_lazy_bad", {"thing": _plugin("thing")})
    registry: Registry = Registry(pkg, "PLUGIN", "widgets", validate=declares("widget", name=str, primary=str))
    with pytest.raises(PluginDeclarationError, match="primary"):
        registry.get("thing")


def test_a_duplicate_name_is_rejected_naming_both_modules(make_package) -> None:
    pkg = make_package("ldtest_dup", {"first": _plugin("csv"), "second": _plugin("tsv", ("csv",))})
    assert list(discover(pkg, "PLUGIN", "readers")) == ["csv", "tsv"]  # aliases not asked for: no clash
    with pytest.raises(DuplicatePluginError) as err:
        discover(pkg, "PLUGIN", "readers", lambda p: (p.name, *p.aliases))
    text = str(err.value)
    assert "two readers claim the name 'csv'" in text
    assert f"{pkg}.first" in text and f"{pkg}.second" in text


def test_the_real_registries_are_sorted_and_hold_only_plugins() -> None:
    """The package's own registries follow the rule: sorted by name, no private helper module taken for a
    plugin."""
    from lossdoctor.commands import discover as commands
    from lossdoctor.report.compare import registry as compare_formats
    from lossdoctor.report.formats import registry as formats
    from lossdoctor.rules.checks import registry as checks
    from lossdoctor.sources import registry as sources
    from lossdoctor.tail import registry as tails

    for registry in (sources, checks, formats, compare_formats, tails):
        names = list(registry())
        assert names and names == sorted(names)
    assert {"trainer-state", "wandb-offline", "wandb-api"} <= set(sources())
    assert all(hasattr(s, "sniff") and hasattr(s, "read") for s in sources().values())
    names = [c.name for c in commands()]
    assert names == sorted(names) and "analyze" in names


def test_a_plugin_missing_what_its_registry_needs_is_rejected_naming_it(make_package) -> None:
    from lossdoctor.plugins import METHOD, PluginDeclarationError, declares

    good = (
        "class R:\n    name = 'good'\n    aliases = ('g',)\n    def render(self, x):\n        return {}\nPLUGIN = R()\n"
    )
    no_method = "class R:\n    name = 'nomethod'\n    aliases = ()\nPLUGIN = R()\n"
    bad_alias = "class R:\n    name = 'badalias'\n    aliases = ('',)\n    def render(self, x):\n        return {}\nPLUGIN = R()\n"
    bad_type = "class R:\n    name = 7\n    aliases = ()\n    def render(self, x):\n        return {}\nPLUGIN = R()\n"
    validate = declares("widget", name=str, aliases=tuple, render=METHOD)
    assert list(discover(make_package("ldtest_decl_ok", {"good": good}), "PLUGIN", "widgets", validate=validate)) == [
        "good"
    ]
    for pkg_name, source, fragment in (
        ("ldtest_decl_m", no_method, r"has no render\(\) method"),
        ("ldtest_decl_a", bad_alias, "aliases must hold names"),
        ("ldtest_decl_t", bad_type, "name must be a str, got 7"),
    ):
        pkg = make_package(pkg_name, {"one": source})
        with pytest.raises(PluginDeclarationError, match=fragment) as err:
            discover(pkg, "PLUGIN", "widgets", lambda p: (str(p.name),), validate=validate)
        assert f"widget in {pkg}.one" in str(err.value)
