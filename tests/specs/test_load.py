"""Loader: overlays, `_self_` ordering, overrides, interpolation and the source map."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlc.compiler.diagnostics import DiagnosticError, SourceLocation
from mlc.compiler.load import OVERRIDE_FILE, load_spec, read_yaml
from mlc.compiler.sourcemap import SourceMap, Span, dotted

CREDIT = Path(__file__).resolve().parents[2] / "examples" / "credit" / "mlc.yaml"


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "mlc.yaml"


def _resolved(loc: SourceLocation | None) -> tuple[str, int, int]:
    assert loc is not None
    return str(Path(loc.file).resolve()), loc.line, loc.col


def test_source_map_points_into_the_file() -> None:
    loaded = load_spec(CREDIT)
    text = CREDIT.read_text(encoding="utf-8").splitlines()
    loc = loaded.source_map.locate(("training", "model", "name"))
    assert loc is not None
    assert text[loc.line - 1][loc.col - 1 :].startswith("HistGradientBoostingClassifier")
    key = loaded.source_map.locate(("training", "model", "name"), at_key=True)
    assert key is not None and text[key.line - 1][key.col - 1 :].startswith("name:")


def test_overlay_values_point_at_the_overlay(tmp_path: Path) -> None:
    spec = _write(
        tmp_path,
        {
            "mlc.yaml": "name: a\ndefaults:\n  - _self_\n  - env: dev\ntraining:\n  seed: 1\n"
            "  retries: 0\n",
            "env/dev.yaml": "# dev\ntraining:\n  retries: 3\n",
        },
    )
    loaded = load_spec(spec)
    assert loaded.data["training"] == {"seed": 1, "retries": 3}
    assert _resolved(loaded.source_map.locate(("training", "retries"))) == (
        str((tmp_path / "env" / "dev.yaml").resolve()),
        3,
        12,
    )
    assert _resolved(loaded.source_map.locate(("training", "seed"))) == (str(spec.resolve()), 6, 9)
    assert [p.name for p in loaded.files] == ["mlc.yaml", "dev.yaml"]


def test_self_ordering(tmp_path: Path) -> None:
    """`_self_` first: overlays win; `_self_` last (or absent): the file wins."""
    overlay = "training:\n  seed: 2\n"
    first = _write(
        tmp_path / "a",
        {"mlc.yaml": "defaults: [_self_, o.yaml]\ntraining:\n  seed: 1\n", "o.yaml": overlay},
    )
    last = _write(
        tmp_path / "b",
        {"mlc.yaml": "defaults: [o.yaml, _self_]\ntraining:\n  seed: 1\n", "o.yaml": overlay},
    )
    absent = _write(
        tmp_path / "c",
        {"mlc.yaml": "defaults: [o.yaml]\ntraining:\n  seed: 1\n", "o.yaml": overlay},
    )
    assert load_spec(first).data["training"]["seed"] == 2
    assert load_spec(last).data["training"]["seed"] == 1
    assert load_spec(absent).data["training"]["seed"] == 1


def test_nested_overlays_and_deep_merge(tmp_path: Path) -> None:
    spec = _write(
        tmp_path,
        {
            "mlc.yaml": "defaults: [_self_, base.yaml]\ntags: {a: '1', b: '2'}\n",
            "base.yaml": "defaults: [_self_, more/extra.yaml]\ntags: {b: '3'}\n",
            "more/extra.yaml": "tags: {c: '4'}\nowners: [x]\n",
        },
    )
    loaded = load_spec(spec)
    assert loaded.data["tags"] == {"a": "1", "b": "3", "c": "4"}
    assert loaded.data["owners"] == ["x"]
    assert _resolved(loaded.source_map.locate(("tags", "c")))[0] == str(
        (tmp_path / "more" / "extra.yaml").resolve()
    )


def test_group_option_override(tmp_path: Path) -> None:
    files = {
        "mlc.yaml": "defaults: [_self_, {env: dev}]\nname: x\n",
        "env/dev.yaml": "tags: {env: dev}\n",
        "env/prod.yaml": "tags: {env: prod}\n",
    }
    spec = _write(tmp_path, files)
    assert load_spec(spec).data["tags"] == {"env": "dev"}
    loaded = load_spec(spec, ["env=prod"])
    assert loaded.data["tags"] == {"env": "prod"}
    assert "env" not in loaded.data
    assert _resolved(loaded.source_map.locate(("tags", "env")))[0] == str(
        (tmp_path / "env" / "prod.yaml").resolve()
    )


def test_group_option_null_skips_the_overlay(tmp_path: Path) -> None:
    spec = _write(tmp_path, {"mlc.yaml": "defaults: [_self_, {env: null}]\nname: x\n"})
    assert load_spec(spec).data == {"name": "x"}


def test_overrides_change_add_force_delete() -> None:
    loaded = load_spec(
        CREDIT,
        [
            "training.model.params.max_iter=300",
            "+training.model.params.l2_regularization=0.5",
            "++training.seed=7",
            "++tags.new=yes",
            "~tuning.timeout",
            "training.cache=false",
        ],
    )
    params = loaded.data["training"]["model"]["params"]
    assert params["max_iter"] == 300
    assert params["l2_regularization"] == 0.5
    assert loaded.data["training"]["seed"] == 7
    assert loaded.data["tags"]["new"] == "yes"
    assert "timeout" not in loaded.data["tuning"]
    assert loaded.data["training"]["cache"] is False
    loc = loaded.source_map.locate(("training", "model", "params", "max_iter"))
    assert loc == SourceLocation(OVERRIDE_FILE, 1, 1)
    second = loaded.source_map.locate(("training", "model", "params", "l2_regularization"))
    assert second == SourceLocation(OVERRIDE_FILE, 1, len("training.model.params.max_iter=300") + 2)


def test_override_values_are_typed() -> None:
    loaded = load_spec(
        CREDIT,
        [
            "training.model.params.max_depth=null",
            "+training.model.params.flags=[1,2]",
            "+training.model.params.extra={a: 1}",
        ],
    )
    params = loaded.data["training"]["model"]["params"]
    assert params["max_depth"] is None
    assert params["flags"] == [1, 2]
    assert params["extra"] == {"a": 1}
    assert loaded.source_map.locate(("training", "model", "params", "extra", "a")) is not None


def test_override_list_index() -> None:
    loaded = load_spec(CREDIT, ["evaluation.metrics.1=f1", "+owners.1=b@example.com"])
    assert loaded.data["evaluation"]["metrics"][1] == "f1"
    assert loaded.data["owners"] == ["risk-ml@example.com", "b@example.com"]
    with pytest.raises(DiagnosticError) as info:
        load_spec(CREDIT, ["+owners.5=c@example.com"])
    assert info.value.diagnostics[0].code == "MLC022"


@pytest.mark.parametrize(
    ("override", "code"),
    [
        ("training.seed=[1,", "MLC020"),
        ("+training.seed=1", "MLC023"),
        ("~training.nope", "MLC022"),
        ("training.seed=1,2", "MLC021"),
        ("training.nope.deeper=1", "MLC022"),
        ("name.x=1", "MLC022"),
        ("training.seed@pkg=1", "MLC021"),
    ],
)
def test_bad_overrides(override: str, code: str) -> None:
    with pytest.raises(DiagnosticError) as info:
        load_spec(CREDIT, ["training.retries=2", override])
    (d,) = info.value.diagnostics
    assert d.code == code
    assert d.location == SourceLocation(OVERRIDE_FILE, 1, len("training.retries=2") + 2)


def test_interpolation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLC_TEST_REGION", "eu-north-1")
    monkeypatch.delenv("MLC_TEST_UNSET", raising=False)
    spec = _write(
        tmp_path,
        {
            "mlc.yaml": (
                "name: x\n"
                "description: 'model ${name} in ${deployment.region}'\n"
                "deployment:\n"
                "  region: '${oc.env:MLC_TEST_REGION}'\n"
                "  cloud: '${oc.env:MLC_TEST_UNSET,aws}'\n"
                "tags: {copy: '${tags.base}', base: b}\n"
                "owners: '${list}'\n"
                "list: [a, b]\n"
            )
        },
    )
    data = load_spec(spec).data
    assert data["description"] == "model x in eu-north-1"
    assert data["deployment"] == {"region": "eu-north-1", "cloud": "aws"}
    assert data["tags"] == {"copy": "b", "base": "b"}
    assert data["owners"] == ["a", "b"]


def test_interpolation_errors_are_located(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLC_TEST_UNSET", raising=False)
    spec = _write(
        tmp_path,
        {"mlc.yaml": "name: x\ntags:\n  a: '${oc.env:MLC_TEST_UNSET}'\n  b: ${nope.key}\n"},
    )
    with pytest.raises(DiagnosticError) as info:
        load_spec(spec)
    found = {
        (d.code, d.path, d.location.line, d.location.col)
        for d in info.value.diagnostics
        if d.location
    }
    assert found == {("MLC030", "tags.a", 3, 6), ("MLC030", "tags.b", 4, 6)}


def test_interpolation_in_overlay_sees_merged_spec(tmp_path: Path) -> None:
    spec = _write(
        tmp_path,
        {
            "mlc.yaml": "defaults: [_self_, o.yaml]\nname: x\n",
            "o.yaml": "description: 'for ${name}'\n",
        },
    )
    assert load_spec(spec).data["description"] == "for x"


def test_yaml_timestamps_stay_strings(tmp_path: Path) -> None:
    spec = _write(tmp_path, {"mlc.yaml": "name: x\ntags: {since: 2024-01-02}\n"})
    assert load_spec(spec).data["tags"]["since"] == "2024-01-02"


def test_read_yaml_positions_of_list_items(tmp_path: Path) -> None:
    spec = _write(tmp_path, {"mlc.yaml": "owners:\n  - a\n  - b\n"})
    data, smap = read_yaml(spec)
    assert data == {"owners": ["a", "b"]}
    span = smap.span(("owners", 1))
    assert span is not None and (span.value.line, span.value.col) == (3, 5)


def test_source_map_helpers() -> None:
    smap = SourceMap(
        {
            (): Span(None, SourceLocation("f", 1, 1)),
            ("a",): Span(SourceLocation("f", 2, 1), SourceLocation("f", 2, 4)),
            ("a", "b"): Span(SourceLocation("f", 3, 3), SourceLocation("f", 3, 6)),
        }
    )
    assert smap.locate(("a", "b")) == SourceLocation("f", 3, 6)
    assert smap.locate(("a", "b"), at_key=True) == SourceLocation("f", 3, 3)
    # a missing key points at its parent's key, not at the parent's value
    assert smap.locate(("a", "zz")) == SourceLocation("f", 2, 1)
    smap.drop_subtree(("a",))
    assert ("a", "b") not in smap and ("a",) in smap
    # a deleted key leaves no place behind for a later `+key` to inherit
    smap.drop(("a",))
    assert ("a",) not in smap and smap.locate(("a",)) == SourceLocation("f", 1, 1)
    assert dotted(("data", "sources", 0, "path")) == "data.sources[0].path"


def test_source_map_index_matches_a_scan() -> None:
    """`under` and `drop_subtree` use a child index; they must agree with a scan of all paths."""
    import random

    rng = random.Random(7)
    loc = SourceLocation("f", 1, 1)
    smap = SourceMap()
    naive: set[tuple[str | int, ...]] = set()
    alphabet: list[str | int] = ["a", "b", 0, 1]
    for _ in range(3000):
        path = tuple(rng.choice(alphabet) for _ in range(rng.randint(0, 4)))
        action = rng.random()
        if action < 0.6:
            smap.set(path, Span(None, loc))
            naive.add(path)
        elif action < 0.8:
            smap.drop_subtree(path)
            naive = {p for p in naive if not (p[: len(path)] == path and len(p) > len(path))}
        else:
            smap.drop(path)
            naive = {p for p in naive if p[: len(path)] != path}
        probe = tuple(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
        assert set(smap.under(probe)) == {p for p in naive if p[: len(probe)] == probe}
    assert set(smap) == naive and len(smap) == len(naive)


_SIMPLE_VALUES = [
    "0", "-0", "7", "-12", "200", "1.5", "-0.25", "10.0", "true", "false", "null",
    "HistGradientBoostingClassifier", "prod", "env/prod", "eu-west-1", "a.b", "x_1", "v2-beta",
    "s3/bucket/key.parquet", "_private",
]  # fmt: skip
_HYDRA_ONLY = [
    "TRUE", "False", "NULL", "inf", "nan", "-inf", "1_000", "007", "1e3", ".5", "5.", "+3",
    "'quoted'", "[1,2]", "{a:1}", "${x}", "a b", "1,2", "choice(1,2)", "", "a=b", "x:y",
]  # fmt: skip


def _hydra_value(text: str) -> object:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (ov,) = OverridesParser.create().parse_overrides([text])
    return ov.value()


@pytest.mark.parametrize("raw", _SIMPLE_VALUES)
def test_simple_overrides_read_as_hydra_reads_them(raw: str) -> None:
    """The Hydra-free path for plain `key=value` must give exactly Hydra's value and type."""
    from mlc.compiler.load import _simple_override

    location = SourceLocation(OVERRIDE_FILE, 1, 1)
    found = _simple_override(f"training.model.name={raw}", location)
    assert found is not None, raw
    expected = _hydra_value(f"training.model.name={raw}")
    assert found.value == expected and type(found.value) is type(expected), raw
    assert (found.kind, found.key) == ("change", "training.model.name")


@pytest.mark.parametrize("raw", _HYDRA_ONLY)
def test_other_override_values_go_through_hydra(raw: str) -> None:
    from mlc.compiler.load import _simple_override

    assert _simple_override(f"a.b={raw}", SourceLocation(OVERRIDE_FILE, 1, 1)) is None


@pytest.mark.parametrize("text", ["+a.b=1", "++a.b=1", "~a.b", "a[0]=1", "a.b@pkg=1", "1a=2"])
def test_prefixed_or_unusual_keys_go_through_hydra(text: str) -> None:
    from mlc.compiler.load import _simple_override

    assert _simple_override(text, SourceLocation(OVERRIDE_FILE, 1, 1)) is None


def test_simple_overrides_do_not_import_hydra(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from mlc.compiler.load import parse_overrides\n"
        "ovs = parse_overrides(['tuning.trials=3', 'env=prod', 'training.seed=-1'])\n"
        "assert [o.value for o in ovs] == [3, 'prod', -1]\n"
        "assert 'hydra' not in sys.modules\n"
        "parse_overrides(['tuning.trials=3', '+tags.team=ml'])\n"
        "assert 'hydra' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
