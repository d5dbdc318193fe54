"""Every tamper case against a real audit log (issue 13, item 5) is caught by `mlc audit verify`.

The log comes from a real `mlc run` of a small spec (once per module); each case copies the
project, tampers with the copy as a forger holding mlc's own functions would, and runs the real
CLI. Cases: a flipped byte, a deleted record, two swapped records, a truncation, an emptied log,
a whole chain rewritten with fresh hashes, a forged `promotion` appended, a float's last digit
changed, and with `--deep` a consistently rewritten cached metrics file and a modified
registered model file; with an HMAC key, a rewrite without the key.

Exit codes: 0 verified, 5 tampering found, 2 nothing (or not everything) could be checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_candidate_model import SPEC, write_project

from mlc.runtime import audit
from mlc.runtime.audit_anchor import ANCHOR_TAG, project_uri

MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
SMALL = SPEC.split("governance:\n")[0]
KEY_ENV = "MLC_AUDIT_TEST_KEY"
KEYED = (
    SMALL
    + "governance:\n  audit: {hmac_key: MLC_AUDIT_TEST_KEY}\n"
    + "security:\n  secrets:\n    MLC_AUDIT_TEST_KEY: 'env:MLC_AUDIT_TEST_KEY'\n"
)
TAMPERED = 5

pytestmark = pytest.mark.slow


def _mlc(project: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    env["OMP_NUM_THREADS"] = "1"
    if key is not None:
        env[KEY_ENV] = key
    return subprocess.run(
        [*MLC, *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def _made(root: Path, spec: str, key: str | None = None) -> Path:
    write_project(root, spec)
    ran = _mlc(root, "run", "mlc.yaml", key=key)
    assert ran.returncode == 0, ran.stderr
    return root


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _made(tmp_path_factory.mktemp("audit") / "project", SMALL)


@pytest.fixture
def project(made: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    shutil.copytree(made, copy)
    return copy


def _log(project: Path) -> Path:
    return project / ".mlc" / "audit.jsonl"


def _lines(project: Path) -> list[bytes]:
    return _log(project).read_bytes().splitlines(keepends=True)


def _cli_verify(project: Path, *args: str, key: str | None = None) -> tuple[int, str]:
    done = _mlc(project, "audit", "verify", ".", *args, key=key)
    assert "Traceback" not in done.stderr
    return done.returncode, done.stdout + done.stderr


def _verify(project: Path, *args: str) -> tuple[int, str]:
    """The library call behind `mlc audit verify` (in-process: MLflow loads once), with the
    CLI's exit code."""
    state = project / ".mlc"
    outcome = audit.verify(state, deep="--deep" in args)
    code = 0 if outcome.ok else TAMPERED if outcome.failed else 2
    return code, outcome.describe(audit.audit_path(state))


def _bodies(lines: list[bytes]) -> list[dict[str, object]]:
    """The records as a forger reads them: JSON without `hash` and `mac`."""
    out = []
    for raw in lines:
        record = json.loads(raw)
        record.pop("hash")
        record.pop("mac", None)
        out.append(record)
    return out


def _forge(project: Path, records: list[dict[str, object]]) -> None:
    """Write `records` as a fresh, internally consistent chain, and a checkpoint to match."""
    prev, lines = audit.GENESIS, []
    for seq, record in enumerate(records, start=1):
        record = {**record, "seq": seq, "prev": prev}
        body = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        prev = audit.chain_hash(prev, body)
        lines.append(audit.encode_line(body, prev))
    _log(project).write_bytes(b"".join(lines))
    head = audit.read_head(project / ".mlc") or {}
    audit.write_head(project / ".mlc", {**head, "records": len(records), "hash": prev, "key": None})


def test_untouched_log_agrees_with_both_heads_and_the_files(project: Path) -> None:
    events = [r["event"] for r in audit.read(project / ".mlc")]
    assert events[0] == "run.start" and events[-1] == "run.end"
    assert {"step.outputs", "gate.verdict", "registration", "promotion"} <= set(events)
    rc, out = _cli_verify(project)
    assert rc == 0, out
    assert f"ok, {len(events)} records" in out
    assert "; agrees with the head in the project's tracking store" in out
    rc, out = _cli_verify(project, "--deep")
    assert rc == 0, out
    assert re.search(r"[1-9]\d* cache files and [1-9]\d* registered model files", out)


def test_flipped_byte(project: Path) -> None:
    lines = _lines(project)
    line = bytearray(lines[3])
    at = line.index(b'"event":"') + len(b'"event":"')
    line[at] ^= 0x01
    lines[3] = bytes(line)
    _log(project).write_bytes(b"".join(lines))
    rc, out = _cli_verify(project)
    assert rc == TAMPERED and ":4: broken link: content does not match its hash" in out


def test_deleted_record(project: Path) -> None:
    lines = _lines(project)
    _log(project).write_bytes(b"".join(lines[:4] + lines[5:]))
    rc, out = _verify(project)
    assert rc == TAMPERED and ":5: broken link: 'prev' does not match" in out


def test_swapped_records(project: Path) -> None:
    lines = _lines(project)
    lines[2], lines[3] = lines[3], lines[2]
    _log(project).write_bytes(b"".join(lines))
    rc, out = _verify(project)
    assert rc == TAMPERED and ":3: broken link" in out


def test_truncated_log_is_caught_by_each_head(project: Path) -> None:
    lines = _lines(project)
    keep = len(lines) - 3
    _log(project).write_bytes(b"".join(lines[:keep]))
    rc, out = _verify(project)
    assert rc == TAMPERED
    assert f"audit.head holds record {len(lines)}, the log has {keep}" in out
    assert "records were removed" in out

    # The forger moves the checkpoint back too: the tracking store still holds the end.
    head = audit.read_head(project / ".mlc") or {}
    audit.write_head(
        project / ".mlc", {**head, "records": keep, "hash": json.loads(lines[keep - 1])["hash"]}
    )
    rc, out = _verify(project)
    assert rc == TAMPERED and "agrees" not in out
    assert (
        "the head in the project's tracking store (experiment 'two-groups') holds record "
        f"{len(lines)}, the log has {keep}"
    ) in out
    assert "audit.head" not in out


def test_emptied_log(project: Path) -> None:
    _log(project).write_bytes(b"")
    rc, out = _verify(project)
    assert rc == TAMPERED
    assert "audit.head holds record" in out and "the log has 0" in out
    assert "tracking store (experiment 'two-groups') holds record" in out


def test_rewritten_chain_with_recomputed_hashes_and_checkpoint(project: Path) -> None:
    records = _bodies(_lines(project))
    gate = next(r for r in records if r["event"] == "gate.verdict")
    gate["details"] = {**gate["details"], "passed": False}  # type: ignore[dict-item]
    _forge(project, records)
    assert audit.verify(project / ".mlc", tracking_uris=()).broken_line is None  # a valid chain
    rc, out = _verify(project)
    assert rc == TAMPERED
    assert "tracking store (experiment 'two-groups') holds hash" in out
    assert "the chain was rewritten" in out and "audit.head" not in out


def test_forged_promotion_is_caught_even_through_mlcs_own_append(project: Path) -> None:
    promotion = next(r for r in audit.read(project / ".mlc") if r["event"] == "promotion")
    details = {**promotion["details"], "version": "7", "aliases": ["champion"]}
    # Appended behind mlc's back: the checkpoint did not move.
    clean = _log(project).read_bytes()
    prev, seq = json.loads(_lines(project)[-1])["hash"], len(_lines(project)) + 1
    body = json.dumps(
        {**{k: v for k, v in promotion.items() if k not in ("hash", "mac")}}
        | {"seq": seq, "prev": prev, "details": details},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    _log(project).write_bytes(clean + audit.encode_line(body, audit.chain_hash(prev, body)))
    rc, out = _verify(project)
    assert rc == TAMPERED and "1 record(s) after the checkpoint" in out
    assert f"record {seq} (promotion) lies past every tracking-store head" in out

    # Through audit.append itself the checkpoint moves, but no tracking-store head covers it.
    _log(project).write_bytes(clean)
    audit.append(project / ".mlc", "promotion", details=details, commit="c")
    rc, out = _verify(project)
    assert rc == TAMPERED and "after the checkpoint" not in out
    assert f"record {seq} (promotion) lies past every tracking-store head" in out


def test_float_last_digit(project: Path) -> None:
    lines = _lines(project)
    number = next(i for i, raw in enumerate(lines) if json.loads(raw)["event"] == "gate.verdict")
    found = re.search(rb'"value":(\d+\.\d+)', lines[number])
    assert found is not None
    digits = found.group(1)
    longer = digits + b"0" * (20 - len(digits)) + b"1"  # beyond a double's precision
    assert float(longer) == float(digits)
    tampered = lines[number].replace(b'"value":' + digits, b'"value":' + longer, 1)
    # Parsed and dumped again, the record is unchanged: only hashing the bytes can tell.
    assert json.loads(tampered) == json.loads(lines[number])
    lines[number] = tampered
    _log(project).write_bytes(b"".join(lines))
    rc, out = _verify(project)
    assert rc == TAMPERED and f":{number + 1}: broken link: content does not match" in out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_deep_catches_a_consistently_rewritten_cached_metrics_file(project: Path) -> None:
    from mlc.targets.local.cache import check_files, hash_outputs

    cache = project / ".mlc" / "cache"
    (folder,) = cache.glob("*.metrics")
    key = folder.name.split(".")[0]
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["roc_auc"] = 0.999
    (folder / "metrics.json").write_text(json.dumps(metrics))
    meta = json.loads((folder / "_meta.json").read_text())
    meta["hash"], meta["metrics"] = _sha(folder / "metrics.json"), metrics
    (folder / "_meta.json").write_text(json.dumps(meta))
    index = cache / "index.jsonl"
    rows = [json.loads(line) for line in index.read_text().splitlines()]
    for row in rows:
        if row["key"] == key:
            outputs = {n: str(cache / f"{key}.{n}") for n in row["outputs"]}
            row["files"], row["outputs"] = hash_outputs(outputs)
            entry = row
    index.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
    # The cache's own check sees a sound entry: a rerun would take it (and its card) as is.
    assert check_files(str(cache), key, entry, entry["outputs"]) == ""

    assert _verify(project)[0] == 0
    rc, out = _verify(project, "--deep")
    assert rc == TAMPERED
    assert f"cache entry of step 'evaluate' ({key[:12]}…" in out
    assert "'metrics/metrics.json' differs from the digest the audit log holds" in out


def test_deep_catches_a_modified_registered_model_file(project: Path) -> None:
    from mlflow import MlflowClient

    uri = project_uri(project / ".mlc")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version("two-groups", "1")
    model_id = str(version.source).removeprefix("models:/")
    location = client.get_logged_model(model_id).artifact_location
    root = Path(location.removeprefix("file://"))
    (model,) = root.glob("*.skops")
    # The copied store still points at the module project's artifacts: put them back after.
    original = model.read_bytes()
    try:
        model.write_bytes(original + b"\0")
        assert _verify(project)[0] == 0
        rc, out = _verify(project, "--deep")
    finally:
        model.write_bytes(original)
    assert rc == TAMPERED
    assert "registered model 'two-groups' version 1 (record " in out
    assert f"'{model.name}' differs from the digest taken at registration" in out


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _made(tmp_path_factory.mktemp("keyed") / "project", KEYED, key="k-123")


def test_hmac_rewrite_without_the_key_is_caught(keyed: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(keyed, project)
    assert all(b'"mac":"' in raw for raw in _lines(project))
    rc, out = _cli_verify(project, key="k-123")
    assert rc == 0 and "MACs checked with $MLC_AUDIT_TEST_KEY" in out, out
    rc, out = _cli_verify(project)
    assert rc == 2 and "cannot check" in out and "MLC_AUDIT_TEST_KEY" in out
    # Nor does a run append unkeyed records to a keyed log.
    refused = _mlc(project, "run", "mlc.yaml")
    assert refused.returncode == 2 and "$MLC_AUDIT_TEST_KEY is not set" in refused.stderr

    # A forger with the log, the checkpoint and the tracking store, but not the key.
    records = _bodies(_lines(project))
    _forge(project, records)
    head = audit.read_head(project / ".mlc") or {}
    uri = project_uri(project / ".mlc")
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("two-groups")
    assert experiment is not None
    client.set_experiment_tag(
        experiment.experiment_id,
        ANCHOR_TAG,
        json.dumps({"records": head["records"], "hash": head["hash"]}),
    )
    rc, out = _cli_verify(project, key="k-123")
    assert rc == TAMPERED
    assert "carries no MAC though the log is keyed" in out
    # MACs made up without the key do not pass either.
    lines = [raw[: -len(b"}\n")] + b',"mac":"' + b"0" * 64 + b'"}\n' for raw in _lines(project)]
    _log(project).write_bytes(b"".join(lines))
    rc, out = _cli_verify(project, key="k-123")
    assert rc == TAMPERED and ":1: broken link: its MAC does not match" in out
