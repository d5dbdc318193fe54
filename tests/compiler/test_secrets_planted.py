"""Planted literal secrets: every one refused, and none in any file, diagnostic or run artifact.

Each case plants one secret (a different kind, in a different place of the spec: model params,
tags, description, owners, alert targets, data sources, feature names, target options,
security, an overlay file, a command-line override, an environment interpolation) into a
copy of a complete spec. For each: `check` must refuse it with an error, compiling to every
installed target must write nothing, and the value must appear in no diagnostic, whichever
format renders it. One `mlc run` then checks that a secret the spec does let through — a
value read from the environment through `security.secrets` — reaches no run artifact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import string
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlc.compiler.api import check, compile_spec
from mlc.compiler.cli import load_commands
from mlc.compiler.diagnostics import Diagnostic, DiagnosticError, has_errors, render
from mlc.compiler.load import load_spec
from mlc.compiler.passes.secrets import redact, redact_text
from mlc.compiler.registry import default_registry

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "tests" / "diff_pairs" / "nochange-identical" / "base.yaml"
TAGS = "tags: {team: risk, domain: lending}"
PARAMS = "params: {max_iter: 150, learning_rate: 0.1, max_depth: 4}"
ALERT = "    - {name: team, channel: slack, target: 'vault:secret/data/alerts#slack_webhook', severity: warning}\n"  # noqa: E501
SOURCE = "      path: data/applications.csv\n"


def _tok(seed: int, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    """A fixed random token (written out at run time, so no scanner flags this file)."""
    rnd = random.Random(seed)
    return "".join(rnd.choice(alphabet) for _ in range(n))


UPPER = string.ascii_uppercase + string.digits
B64 = string.ascii_letters + string.digits + "+/"


@dataclass
class Case:
    name: str
    value: str
    """What must never be copied out (the secret, or its secret part)."""
    edits: tuple[tuple[str, str], ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    code: str = "MLC610"
    """The code that must refuse it."""


def _tag(text: str) -> tuple[str, str]:
    return (TAGS, "tags: {team: risk, domain: lending, " + text + "}")


def _param(text: str) -> tuple[str, str]:
    return (PARAMS, "params: {max_iter: 150, learning_rate: 0.1, max_depth: 4, " + text + "}")


def _alert(channel: str, target: str) -> tuple[str, str]:
    return (ALERT, ALERT + f"    - {{name: x, channel: {channel}, target: '{target}'}}\n")


AWS_ID = "AKIA" + _tok(1, 16, UPPER)
AWS_SECRET = _tok(2, 40, B64)
PEM_BODY = _tok(3, 64, B64)
SA_KEY_ID = _tok(4, 40, string.hexdigits.lower()[:16])
AZURE_KEY = _tok(5, 86, B64) + "=="
HOOK = _tok(6, 24)

CASES = [
    Case("params-password", "hunter2!x", (_param("password: 'hunter2!x'"),)),
    Case("params-aws-secret-key", AWS_SECRET, (_param(f"aws_secret_access_key: '{AWS_SECRET}'"),)),
    Case("params-aws-key-id", AWS_ID, (_param(f"region_hint: {AWS_ID}"),)),
    Case("params-numeric-passcode", "90817263", (_param("passcode_password: 90817263"),)),
    Case("tags-password", "S3cure-Passw0rd", (_tag("db_password: S3cure-Passw0rd"),)),
    Case("tags-github-token", "ghp_" + _tok(7, 36), (_tag(f"note: ghp_{_tok(7, 36)}"),)),
    Case("tags-gitlab-token", "glpat-" + _tok(8, 20), (_tag(f"ci: glpat-{_tok(8, 20)}"),)),
    Case("tags-slack-token", "xoxb-" + _tok(9, 24), (_tag(f"bot: xoxb-{_tok(9, 24)}"),)),
    Case(
        "tags-jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0." + _tok(10, 43),
        (_tag(f"session: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.{_tok(10, 43)}"),),
    ),
    Case("tags-high-entropy", _tok(11, 32), (_tag(f"build: {_tok(11, 32)}"),)),
    Case("tags-secret-as-key", AWS_ID, (_tag(f"{AWS_ID}: owner"),)),
    Case("tags-number-under-password", "55512345", (_tag("pin_password: 55512345"),)),
    Case(
        "tags-gcp-service-account-json",
        SA_KEY_ID,
        (_tag('sa: \'{"type": "service_account", "private_key_id": "' + SA_KEY_ID + "\"}'"),),
    ),
    Case(
        "tags-private-key-block",
        PEM_BODY,
        (_tag(f'tls: "-----BEGIN PRIVATE KEY-----\\n{PEM_BODY}\\n-----END PRIVATE KEY-----"'),),
    ),
    Case(
        "description-password",
        "Tr0ub4dor&3",
        (("description: Predicts", "description: Admin password= Tr0ub4dor&3. Predicts"),),
    ),
    Case(
        "description-aws-key",
        AWS_ID,
        (("description: Predicts", f"description: {AWS_ID} Predicts"),),
    ),
    Case(
        "description-url-credentials",
        "pg-Pa55word-91",
        (
            (
                "description: Predicts",
                "description: Reads postgresql://scorer:pg-Pa55word-91@db.internal/loans. Predicts",
            ),
        ),
    ),
    Case(
        "description-openai-key",
        "sk-proj-" + _tok(12, 48),
        (("description: Predicts", f"description: key sk-proj-{_tok(12, 48)} Predicts"),),
    ),
    Case(
        "alerts-email-is-slack-webhook",
        HOOK,
        (_alert("email", f"https://hooks.slack.com/services/T0123ABCD/B0456EFGH/{HOOK}"),),
    ),
    Case(
        "alerts-email-is-teams-webhook",
        _tok(13, 30),
        (_alert("email", f"https://contoso.webhook.office.com/webhookb2/{_tok(13, 30)}"),),
    ),
    Case(
        "alerts-webhook-literal-discord",
        _tok(14, 40),
        (_alert("webhook", f"https://discord.com/api/webhooks/123456/{_tok(14, 40)}"),),
    ),
    Case(
        "owners-slack-webhook",
        _tok(15, 24),
        (
            (
                "owners: [risk-ml@example.com]",
                f"owners: ['https://hooks.slack.com/services/T1/B2/{_tok(15, 24)}']",
            ),
        ),
    ),
    Case(
        "data-sql-url-password",
        "Warehouse-Pa55",
        (
            (
                SOURCE,
                SOURCE + "    - {name: extra, format: sql, "
                "url: 'postgresql://app:Warehouse-Pa55@db/prod', query: 'select 1'}\n",
            ),
        ),
    ),
    Case(
        "data-path-sas-signature",
        _tok(16, 43),
        (
            (
                SOURCE,
                "      path: 'https://acct.blob.core.windows.net/c/applications.csv"
                f"?sv=2022-11-02&sig={_tok(16, 43)}'\n",
            ),
        ),
    ),
    Case(
        "feature-name-high-entropy",
        _tok(17, 28),
        (("{name: debt_ratio, expr:", "{name: " + _tok(17, 28) + ", expr:"),),
    ),
    Case(
        "column-description-token",
        "tkn-" + _tok(18, 12),
        (
            (
                "description: Internal applicant number",
                f"description: 'lookup token: tkn-{_tok(18, 12)}'",
            ),
        ),
    ),
    Case(
        "target-option-jwt",
        "eyJ0eXAiOiJKV1QifQ.eyJpc3MiOiJrOHMifQ." + _tok(19, 43),
        (
            (
                "targets:\n  ir: {}",
                "targets:\n  ir: {}\n  kfp: {service_account: "
                f"eyJ0eXAiOiJKV1QifQ.eyJpc3MiOiJrOHMifQ.{_tok(19, 43)}}}",
            ),
        ),
    ),
    Case(
        "target-option-named-token",
        "plain-token-value",
        (("targets:\n  ir: {}", "targets:\n  ir: {api_token: plain-token-value}"),),
    ),
    Case(
        "security-kms-key-azure-connection-string",
        AZURE_KEY,
        (
            (
                "encryption: {at_rest: true, in_transit: true}",
                "encryption: {at_rest: true, in_transit: true, kms_key: "
                f"'DefaultEndpointsProtocol=https;AccountName=a;AccountKey={AZURE_KEY}'}}",
            ),
        ),
    ),
    Case(
        "security-secrets-literal",
        "Sup3r-S3cret!",
        (
            (
                "    MLC_PSEUDONYM_KEY: 'vault:secret/data/credit-risk#pseudonym_key'\n",
                "    MLC_PSEUDONYM_KEY: 'vault:secret/data/credit-risk#pseudonym_key'\n"
                "    DB_PASSWORD: 'Sup3r-S3cret!'\n",
            ),
        ),
        code="MLC104",
    ),
    Case(
        "security-role-name-aws-key",
        "ASIA" + _tok(24, 16, UPPER),
        (("{role: data-scientist,", "{role: ASIA" + _tok(24, 16, UPPER) + ","),),
    ),
    Case(
        "governance-approver-discord-webhook",
        _tok(25, 40),
        (
            (
                "approvers: [model-risk@example.com]",
                f"approvers: ['https://discordapp.com/api/webhooks/42/{_tok(25, 40)}']",
            ),
        ),
    ),
    Case(
        "overlay-file-stripe-key",
        "sk_live_" + _tok(20, 24),
        (("apiVersion: mlc/v1", "defaults: [_self_, secrets.yaml]\napiVersion: mlc/v1"),),
        files={"secrets.yaml": f"tags: {{api_key: sk_live_{_tok(20, 24)}}}\n"},
    ),
    Case(
        "override-hugging-face-token",
        "hf_" + _tok(21, 34),
        overrides=(f"+tags.hf=hf_{_tok(21, 34)}",),
    ),
    Case(
        "override-google-api-key",
        "AIza" + _tok(22, 35),
        overrides=(f"+training.model.params.maps=AIza{_tok(22, 35)}",),
    ),
    Case(
        "env-interpolation-tag",
        "correct-horse-battery-staple",
        (_tag("db: '${oc.env:MLC_PLANTED_DB}'"),),
        env={"MLC_PLANTED_DB": "correct-horse-battery-staple"},
        code="MLC615",
    ),
    Case(
        "env-interpolation-copied-into-description",
        "an-environment-value",
        (
            _tag("db: '${oc.env:MLC_PLANTED_DB}'"),
            ("description: Predicts", "description: db ${tags.db}. Predicts"),
        ),
        env={"MLC_PLANTED_DB": "an-environment-value"},
        code="MLC615",
    ),
    Case(
        "env-interpolation-override",
        "override-env-value",
        overrides=("+tags.x=${oc.env:MLC_PLANTED_X}",),
        env={"MLC_PLANTED_X": "override-env-value"},
        code="MLC615",
    ),
    Case(
        "env-interpolation-overlay",
        "overlay-env-value",
        (("apiVersion: mlc/v1", "defaults: [_self_, prod.yaml]\napiVersion: mlc/v1"),),
        files={"prod.yaml": "security:\n  encryption: {kms_key: '${oc.env:MLC_PLANTED_KMS}'}\n"},
        env={"MLC_PLANTED_KMS": "overlay-env-value"},
        code="MLC615",
    ),
    Case(
        "env-interpolation-secret-shaped",
        AWS_ID,
        (_param("note: '${oc.env:MLC_PLANTED_AWS}'"),),
        env={"MLC_PLANTED_AWS": AWS_ID},
        code="MLC615",
    ),
]


def _project(tmp_path: Path, case: Case) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    text = BASE.read_text()
    for old, new in case.edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    (project / "mlc.yaml").write_text(text)
    for name, content in case.files.items():
        (project / name).write_text(content)
    return project / "mlc.yaml"


def _forms(value: str) -> list[str]:
    """The value as text and as it would sit inside JSON (escaped)."""
    return list(dict.fromkeys([value, json.dumps(value)[1:-1]]))


def _assert_absent(value: str, text: str, where: str) -> None:
    for form in _forms(value):
        assert form not in text, f"secret copied into {where}"


def _files_below(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_enough_planted_secrets() -> None:
    assert len(CASES) >= 30
    assert len({c.name.split("-")[0] for c in CASES}) >= 10  # places in the spec
    assert len({c.value for c in CASES}) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_planted_secret_is_refused_and_never_copied(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var, value in case.env.items():
        monkeypatch.setenv(var, value)
    spec = _project(tmp_path, case)
    # the value really is in what the compiler reads (so its absence below means something)
    assert case.value in json.dumps(load_spec(spec, list(case.overrides)).data) or case.env

    try:
        diags: list[Diagnostic] = list(check(spec, case.overrides).diagnostics)
    except DiagnosticError as exc:
        diags = list(exc.diagnostics)
    assert has_errors(diags), f"{case.name}: accepted"
    refusing = [d for d in diags if d.code == case.code]
    assert refusing, [d.render() for d in diags]
    assert all(d.location is not None for d in refusing)
    for fmt in ("text", "json", "github"):
        _assert_absent(case.value, render(diags, fmt), f"{fmt} diagnostics")

    before = _files_below(tmp_path)
    out = tmp_path / "out"
    targets = sorted(t.name for t in default_registry().all())
    assert len(targets) >= 7
    with pytest.raises(DiagnosticError) as refused:
        compile_spec(spec, targets, out, case.overrides)
    _assert_absent(case.value, str(refused.value), "the compile error")
    assert not out.exists()

    app = load_commands()
    runner = CliRunner()
    for args in (
        ["validate", str(spec), *case.overrides, "--format", "json"],
        ["compile", str(spec), *case.overrides, *(f"-t{t}" for t in targets), "-o", str(out)],
    ):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 2, result.output
        _assert_absent(case.value, result.output, f"'mlc {args[0]}' output")
    assert not out.exists()
    # nothing written anywhere (no audit record of a refused compile either)
    assert _files_below(tmp_path) == before


def test_redaction_shows_the_ends_of_long_values_only() -> None:
    assert redact(AWS_ID) == f"{AWS_ID[:4]}…{AWS_ID[-4:]} (20 chars)"
    assert redact("hunter2") == "… (7 chars)"
    text = f"found {AWS_ID!r} at postgresql://a:pg-Pa55word@h/db; password= Tr0ub4dor&3"
    shown = redact_text(text)
    for secret in (AWS_ID, "pg-Pa55word", "Tr0ub4dor&3"):
        assert secret not in shown
    assert redact_text(shown) == shown  # redacting twice changes nothing
    assert redact_text("unknown key 'password'") == "unknown key 'password'"


def test_schema_and_load_errors_do_not_quote_a_secret(tmp_path: Path) -> None:
    """The messages that quote what they found (pydantic's input, an override's text) show a
    suspected secret redacted, and still say what was wrong."""
    spec = tmp_path / "mlc.yaml"
    spec.write_text(BASE.read_text().replace("engine: pandas", f"engine: {AWS_ID}", 1))
    with pytest.raises(DiagnosticError) as info:
        check(spec)
    (wrong,) = [d for d in info.value.diagnostics if d.code == "MLC103"]
    assert wrong.path == "data.engine" and redact(AWS_ID) in wrong.message
    assert AWS_ID not in str(info.value)
    with pytest.raises(DiagnosticError) as info:
        load_spec(BASE, [f"bad key={AWS_ID}"])
    assert [d.code for d in info.value.diagnostics] == ["MLC020"]
    assert AWS_ID not in str(info.value) and redact(AWS_ID) in str(info.value)


def test_environment_through_security_secrets_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reference may come from the environment: only the reference reaches outputs."""
    monkeypatch.setenv("MLC_PLANTED_REF", "vault:secret/data/credit-risk#pseudonym_key")
    text = BASE.read_text().replace(
        "MLC_PSEUDONYM_KEY: 'vault:secret/data/credit-risk#pseudonym_key'",
        "MLC_PSEUDONYM_KEY: '${oc.env:MLC_PLANTED_REF}'",
    )
    spec = tmp_path / "mlc.yaml"
    spec.write_text(text)
    assert check(spec).ok


MLC = [sys.executable, "-c", "from mlc.compiler.cli import main; main()"]
RUN_KEY = "planted-" + _tok(23, 24)


@pytest.mark.slow
def test_run_keeps_an_environment_secret_out_of_every_artifact(tmp_path: Path) -> None:
    """`mlc run` with the pseudonymisation key from the environment (through
    `security.secrets`): the key is used, and appears in no card, MLflow file, audit log, run
    record or cache entry; a secret in the description stops the run before anything runs."""
    project = tmp_path / "credit"
    shutil.copytree(
        REPO / "examples" / "credit", project, ignore=shutil.ignore_patterns(".mlc", "out")
    )
    spec = project / "mlc.yaml"
    original = spec.read_text()
    env = {**os.environ, "MLC_PSEUDONYM_KEY": RUN_KEY, "OMP_NUM_THREADS": "1"}

    def mlc(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*MLC, *args], cwd=project, env=env, capture_output=True, text=True, timeout=900
        )

    assert "description:" in original
    spec.write_text(
        original.replace("description:", "description: 'admin password= Tr0ub4dor&3.'  #", 1)
    )
    refused = mlc("run", "mlc.yaml", "tuning.trials=2", "tuning.cv_folds=2")
    assert refused.returncode == 2, refused.stderr
    assert "Tr0ub4dor&3" not in refused.stdout + refused.stderr
    assert not (project / ".mlc" / "cache").exists()

    spec.write_text(
        original.replace("'vault:secret/data/credit-risk#pseudonym_key'", "'env:MLC_PSEUDONYM_KEY'")
    )
    assert "'env:MLC_PSEUDONYM_KEY'" in spec.read_text()
    run = mlc("run", "mlc.yaml", "tuning.trials=2", "tuning.cv_folds=2")
    assert run.returncode == 0, run.stderr
    assert RUN_KEY not in run.stdout + run.stderr
    state = project / ".mlc"
    written = _files_below(state)
    assert any(p.name == "card.md" for p in written)
    assert any(p.name == "mlflow.db" for p in written)
    assert any("audit" in p.name for p in written)
    for path, data in written.items():
        assert RUN_KEY.encode() not in data, f"secret copied into {path.relative_to(project)}"
