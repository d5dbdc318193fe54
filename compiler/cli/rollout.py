"""`mlc rollout status|advance|promote|rollback`: the rollout of a running `mlc serve`.

Calls the server's admin endpoints (`/admin/rollout...`) with the bearer token from
`MLC_SERVE_ADMIN_TOKEN`, the one the server was started with. `advance` moves the candidate to
the strategy's next step (after the last one: promotes it), `promote` moves the registry alias
`champion` to the candidate's version and all traffic to it, `rollback` sends all traffic back
to the stable version (after a promotion, the alias too). Each decision lands in the audit chain
with the live evidence the server holds.

Exit codes: 0 done; 2 no token, the server unreachable or refusing the token, a decision that
does not apply now (already promoted or rolled back), a spec whose model the server does not
serve; 1 internal error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from mlc.compiler.cli._app import app
from mlc.compiler.cli._common import EXIT_SPEC, handle_errors

TOKEN_ENV = "MLC_SERVE_ADMIN_TOKEN"
TIMEOUT_S = 30.0

rollout_app = typer.Typer(
    name="rollout",
    help="Inspect and move the rollout of a running `mlc serve` (canary, blue_green).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.add_typer(rollout_app, name="rollout")

SpecArg = Annotated[
    Path | None,
    typer.Argument(
        help="Spec file or project folder; when given, the server must serve its model.",
        show_default=False,
    ),
]
UrlOpt = Annotated[
    str, typer.Option("--url", help="The server's address (as `mlc serve` printed it).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the server's answer as JSON.")]


def _fail(message: str) -> NoReturn:
    print(f"mlc rollout: {message}", file=sys.stderr)
    raise typer.Exit(EXIT_SPEC)


def _call(url: str, method: str, path: str) -> dict[str, Any]:
    """The JSON answer of an admin endpoint; every refusal is exit 2 with what to change."""
    import urllib.error
    import urllib.request

    token = os.environ.get(TOKEN_ENV)
    if not token:
        _fail(f"set {TOKEN_ENV} to the admin token the server was started with")
    base = url.rstrip("/")
    request = urllib.request.Request(
        base + path,
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {}
        said = body.get("error") if isinstance(body, dict) else None
        if exc.code == 401:
            _fail(
                f"the server at {base} refused the admin token (401): {TOKEN_ENV} must hold "
                "the token the server was started with"
            )
        if exc.code == 404:
            _fail(
                f"no rollout admin endpoint at {base}{path} (404): start `mlc serve` with "
                f"{TOKEN_ENV} set, and check --url"
            )
        if exc.code == 502 and isinstance(body, dict) and "decision" in body:
            reason = body["decision"].get("evidence", {}).get("reason", "")
            _fail(f"{body['decision']['decision']}: {reason}")
        _fail(f"the server at {base} answered {exc.code}: {said or exc.reason}")
    except urllib.error.URLError as exc:
        _fail(f"cannot reach the server at {base}: {exc.reason} (is `mlc serve` running?)")
    except (TimeoutError, ConnectionError) as exc:
        _fail(f"cannot reach the server at {base}: {exc}")
    except ValueError as exc:
        _fail(f"the server at {base} did not answer JSON: {exc}")


def _check_spec(spec: Any, status: dict[str, Any]) -> None:
    """A named spec must be the one whose model the server serves (the wrong server's weights
    are not moved)."""
    if spec is None:
        return
    from mlc.compiler.cli._project import resolve_spec
    from mlc.compiler.load import load_spec

    path, _ = resolve_spec(spec, [])
    data = load_spec(path).data
    name = data.get("name") if isinstance(data, dict) else None
    if name is not None and name != status.get("model"):
        _fail(
            f"the server serves model '{status.get('model')}', the spec {path} is '{name}': "
            "pass the server of this spec with --url"
        )


def _weights(weights: dict[str, float]) -> str:
    return ", ".join(f"{name} {w:g}%" for name, w in weights.items())


def _print_status(doc: dict[str, Any]) -> None:
    if doc.get("state") == "none":
        print(f"{doc['model']}: strategy '{doc['strategy']}' has no rollout")
        print(f"weights: {_weights(doc['weights'])}")
        return
    steps = doc["steps"]
    mode = "automatic" if doc["automatic"] else "manual"
    where = "preview" if doc["step"] < 0 else f"step {doc['step'] + 1}/{len(steps)}"
    print(f"{doc['model']} ({doc['strategy']}, {mode}): {doc['state'].replace('_', ' ')}, {where}")
    print(f"weights: {_weights(doc['weights'])}")
    tracks = doc["tracks"]
    print(
        f"stable: {tracks['stable']['track']} v{tracks['stable']['version']}; candidate: "
        f"{tracks['candidate']['track']} v{tracks['candidate']['version']}"
    )
    window = doc["window"]
    print(
        f"window: {window['requests']} candidate request(s), {window['errors']} error(s) over "
        f"{window['window_s']:g} s (judged from {doc['min_requests']})"
    )
    for cond in window["conditions"]:
        value = "n/a" if cond["value"] is None else f"{cond['value']:.6g}"
        print(f"  {cond['metric']} {value} (rolls back when {cond['op']} {cond['threshold']:g})")
    last = doc.get("last_decision")
    if last:
        reason = last["evidence"].get("reason", "")
        print(f"last decision: {last['decision']} by {last['by']} at {last['when']}: {reason}")
    if doc.get("audit_error"):
        print(f"audit: a record was not written: {doc['audit_error']}")


def _act(action: str, spec: Any, url: str, as_json: bool) -> None:
    _check_spec(spec, _call(url, "GET", "/admin/rollout"))
    answer = _call(url, "POST", f"/admin/rollout/{action}")
    if as_json:
        print(json.dumps(answer, indent=2, sort_keys=True))
        return
    record = answer["decision"]
    print(
        f"{record['decision']}: {_weights(record['weights_before'])} -> "
        f"{_weights(record['weights_after'])}"
    )
    _print_status(answer["status"])


@rollout_app.command()
@handle_errors
def status(
    spec: SpecArg = None, url: UrlOpt = "http://127.0.0.1:8080", as_json: JsonOpt = False
) -> None:
    """Show the rollout: state, step, weights, the live window and the last decision."""
    doc = _call(url, "GET", "/admin/rollout")
    _check_spec(spec, doc)
    if as_json:
        print(json.dumps(doc, indent=2, sort_keys=True))
    else:
        _print_status(doc)


@rollout_app.command()
@handle_errors
def advance(
    spec: SpecArg = None, url: UrlOpt = "http://127.0.0.1:8080", as_json: JsonOpt = False
) -> None:
    """Move the candidate to the next step (after the last one: promote it)."""
    _act("advance", spec, url, as_json)


@rollout_app.command()
@handle_errors
def promote(
    spec: SpecArg = None, url: UrlOpt = "http://127.0.0.1:8080", as_json: JsonOpt = False
) -> None:
    """Move the `champion` alias to the candidate's version and all traffic to it."""
    _act("promote", spec, url, as_json)


@rollout_app.command()
@handle_errors
def rollback(
    spec: SpecArg = None, url: UrlOpt = "http://127.0.0.1:8080", as_json: JsonOpt = False
) -> None:
    """Send all traffic back to the stable version (after a promotion, the alias too)."""
    _act("rollback", spec, url, as_json)
