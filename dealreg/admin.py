"""`dealreg admin`: operate a running dealreg through its public API.

A small HTTP client: every command is one or a few requests to `/v1/...` with the admin
bearer token, so authorization, validation and auditing are the API's own (nothing here
touches a database). `--url` / `DEALREG_URL` names the server, `--token` /
`DEALREG_ADMIN_TOKEN` the credential (the admin token or an admin API key). Output is a
table for people, `--json` for scripts; an API problem (RFC 9457) is printed with its
field errors and the command exits 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

admin_app = typer.Typer(help="Operate a running dealreg through its API (admin token).",
                        no_args_is_help=True)
keys_app = typer.Typer(help="API keys: mint, list, revoke.", no_args_is_help=True)
partners_app = typer.Typer(help="Partners: list, show, create or update.",
                           no_args_is_help=True)
owners_app = typer.Typer(help="Escalation owners: list, show, create or update.",
                         no_args_is_help=True)
policy_app = typer.Typer(help="Rules of engagement: show, versions, publish.",
                         no_args_is_help=True)
dead_app = typer.Typer(help="Dead-lettered notifications: list, redeliver.",
                       no_args_is_help=True)
admin_app.add_typer(keys_app, name="keys")
admin_app.add_typer(partners_app, name="partners")
admin_app.add_typer(owners_app, name="owners")
admin_app.add_typer(policy_app, name="policy")
admin_app.add_typer(dead_app, name="dead-letters")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


@dataclass
class Client:
    url: str
    token: str | None
    as_json: bool
    timeout: float

    def _fail(self, message: str) -> NoReturn:
        err.print(f"[red]error:[/red] {escape(message)}")
        raise typer.Exit(1)

    def request(self, method: str, path: str, *, body: Any = None,
                params: dict[str, Any] | None = None, allow: Sequence[int] = ()) -> httpx.Response:
        if not self.token:
            self._fail("no admin token: pass --token or set DEALREG_ADMIN_TOKEN")
        if not (self.token.isascii() and self.token.isprintable()):
            self._fail("the admin token has characters an HTTP header cannot carry "
                       "(check --token / DEALREG_ADMIN_TOKEN)")
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        try:
            response = httpx.request(method, self.url.rstrip("/") + path, json=body,
                                     params={k: v for k, v in (params or {}).items()
                                             if v is not None},
                                     headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            self._fail(f"cannot reach dealreg at {self.url} ({type(exc).__name__}: {exc}); "
                       "check --url / DEALREG_URL")
        if response.status_code >= 400 and response.status_code not in allow:
            self._fail(problem_text(method, path, response))
        kind = response.headers.get("content-type", "")
        if response.content and "json" not in kind:
            self._fail(f"{method} {path}: the answer of {self.url} is not JSON "
                       f"({kind or 'no content type'}, HTTP {response.status_code}); "
                       "is --url / DEALREG_URL the base URL of a dealreg API?")
        return response

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params).json()

    def pages(self, path: str, limit: int, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a cursor-paginated list (`{items, next_cursor}`)."""
        cursor: str | None = None
        while True:
            page = self.get(path, limit=limit, cursor=cursor, **params)
            yield from page.get("items", [])
            cursor = page.get("next_cursor")
            if not cursor:
                return


def problem_text(method: str, path: str, response: httpx.Response) -> str:
    """An RFC 9457 problem as one readable message (status, title, detail, field errors)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return f"{method} {path}: HTTP {response.status_code} {response.text[:300]}"
    text = (f"{method} {path}: {problem.get('status', response.status_code)} "
            f"{problem.get('title', '')}: {problem.get('detail', '')}").rstrip(": ")
    for error in problem.get("errors") or []:
        text += f"\n  {error.get('field')}: {error.get('message')}"
    if response.status_code == 401:
        text += "\n  (is --token / DEALREG_ADMIN_TOKEN the admin token of this server?)"
    return text


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]


def _client(ctx: typer.Context, as_json: bool = False) -> Client:
    client: Client = ctx.obj
    client.as_json = client.as_json or as_json
    return client


@admin_app.callback()
def admin(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(envvar="DEALREG_URL",
                                     help="Base URL of the dealreg API")]
    = "http://127.0.0.1:8080",
    token: Annotated[str | None, typer.Option(envvar="DEALREG_ADMIN_TOKEN",
                                              help="Admin token or admin API key",
                                              show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables")]
    = False,
    timeout: Annotated[float, typer.Option(help="Seconds per request")] = 30.0,
) -> None:
    """Operate a running dealreg through its API: authorization is the API's."""
    ctx.obj = Client(url, token, as_json, timeout)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))[:80]
    return str(value)


def show(client: Client, data: Any, columns: Sequence[str] | None = None,
         title: str | None = None) -> None:
    """A list as a table, an object as a two-column table; `--json` prints it as JSON."""
    if client.as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    if isinstance(data, list):
        cols = list(columns or (data[0].keys() if data else ["(none)"]))
        table = Table(*cols, title=title)
        for item in data:
            table.add_row(*(_cell(item.get(c)) for c in cols))
        out.print(table)
        if not data:
            out.print("(none)")
        return
    table = Table("field", "value", title=title, show_header=False)
    for key, value in data.items():
        table.add_row(key, _cell(value) if not isinstance(value, dict | list)
                      else json.dumps(value, indent=1, default=str))
    out.print(table)


Limit = Annotated[int, typer.Option(min=1, max=500, help="Page size of each request")]


# --- API keys ---------------------------------------------------------------------------

@keys_app.command("mint")
def keys_mint(
    ctx: typer.Context, *, as_json: JsonFlag = False,
    role: Annotated[str, typer.Option(help="integration, partner, rep, owner, "
                                           "channel_manager or admin")],
    name: Annotated[str, typer.Option(help="What the key is for")],
    subject: Annotated[str | None, typer.Option(
        help="The partner, rep or owner id the key acts as")] = None,
) -> None:
    """Mint an API key; its token is printed this once."""
    client = _client(ctx, as_json)
    key = client.request("POST", "/v1/api-keys", body={
        "role": role, "subject_id": subject, "name": name}).json()
    show(client, key, title="API key (the token is shown only now)")


@keys_app.command("list")
def keys_list(ctx: typer.Context, *, as_json: JsonFlag = False, limit: Limit = 100,
              include_revoked: Annotated[bool, typer.Option(help="Also revoked keys")]
              = False) -> None:
    """Every API key (never a token or secret)."""
    client = _client(ctx, as_json)
    show(client, list(client.pages("/v1/api-keys", limit,
                                   include_revoked=str(include_revoked).lower())),
         None if client.as_json else
         ("id", "role", "subject_id", "name", "created_at", "revoked_at"))


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, *, as_json: JsonFlag = False,
        key_id: Annotated[str, typer.Argument()]) -> None:
    """Revoke an API key (other processes stop accepting it within the key cache time)."""
    client = _client(ctx, as_json)
    client.request("DELETE", f"/v1/api-keys/{key_id}")
    show(client, {"id": key_id, "revoked": True})


# --- partners ---------------------------------------------------------------------------

PARTNER_FIELDS = ("name", "type", "tier", "region", "status", "webhook_url")


@partners_app.command("list")
def partners_list(ctx: typer.Context, *, as_json: JsonFlag = False,
        limit: Limit = 100) -> None:
    """Every partner."""
    client = _client(ctx, as_json)
    show(client, list(client.pages("/v1/partners", limit)),
         None if client.as_json else
         ("id", "name", "type", "tier", "region", "status", "updated_at"))


@partners_app.command("show")
def partners_show(ctx: typer.Context, *, as_json: JsonFlag = False,
        partner_id: Annotated[str, typer.Argument()]) -> None:
    """One partner (with its webhook secrets: admin)."""
    client = _client(ctx, as_json)
    show(client, client.get(f"/v1/partners/{partner_id}"))


def _upsert(client: Client, path: str, fields: Sequence[str], given: dict[str, Any],
            file: Path | None) -> None:
    """Create or update: the current object's fields (if it exists), then the file's, then
    the options given; PUT replaces the whole object, so nothing given is lost."""
    from_file = _load(file) if file is not None else {}  # a bad file: before any request
    body: dict[str, Any] = {}
    current = client.request("GET", path, allow=(404,))
    if current.status_code == 200:
        body = {k: v for k, v in current.json().items() if k in fields}
    body.update(from_file)
    body.update({k: v for k, v in given.items() if v is not None})
    response = client.request("PUT", path, body=body)
    show(client, response.json(),
         title="created" if response.status_code == 201 else "updated")


@partners_app.command("put")
def partners_put(
    ctx: typer.Context, *, as_json: JsonFlag = False,
    partner_id: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option()] = None,
    type: Annotated[str | None, typer.Option(help="reseller, distributor, ...")] = None,
    tier: Annotated[str | None, typer.Option()] = None,
    region: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option(help="active, suspended, exited")] = None,
    webhook_url: Annotated[str | None, typer.Option()] = None,
    file: Annotated[Path | None, typer.Option(
        help="A JSON body (PartnerRequest); options override its fields")] = None,
) -> None:
    """Create a partner or update the fields given (the others keep their values)."""
    client = _client(ctx, as_json)
    _upsert(client, f"/v1/partners/{partner_id}", PARTNER_FIELDS,
            {"name": name, "type": type, "tier": tier, "region": region, "status": status,
             "webhook_url": webhook_url}, file)


# --- escalation owners ------------------------------------------------------------------

OWNER_FIELDS = ("name", "email", "webhook_url")


@owners_app.command("list")
def owners_list(ctx: typer.Context, *, as_json: JsonFlag = False,
        limit: Limit = 100) -> None:
    """Every escalation owner."""
    client = _client(ctx, as_json)
    show(client, list(client.pages("/v1/owners", limit)),
         None if client.as_json else ("id", "name", "email", "webhook_url", "updated_at"))


@owners_app.command("show")
def owners_show(ctx: typer.Context, *, as_json: JsonFlag = False,
        owner_id: Annotated[str, typer.Argument()]) -> None:
    """One escalation owner (with its webhook secrets)."""
    client = _client(ctx, as_json)
    show(client, client.get(f"/v1/owners/{owner_id}"))


@owners_app.command("put")
def owners_put(
    ctx: typer.Context, *, as_json: JsonFlag = False,
    owner_id: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option()] = None,
    email: Annotated[str | None, typer.Option()] = None,
    webhook_url: Annotated[str | None, typer.Option()] = None,
    rotate_secret: Annotated[bool, typer.Option(
        help="Make a new webhook secret current (the old one signs for the grace period)")]
    = False,
    file: Annotated[Path | None, typer.Option(
        help="A JSON body (OwnerRequest); options override its fields")] = None,
) -> None:
    """Create an escalation owner or update the fields given."""
    client = _client(ctx, as_json)
    _upsert(client, f"/v1/owners/{owner_id}", OWNER_FIELDS,
            {"name": name, "email": email, "webhook_url": webhook_url,
             "rotate_secret": rotate_secret or None}, file)


# --- policy -------------------------------------------------------------------------------

@policy_app.command("show")
def policy_show(
    ctx: typer.Context, *, as_json: JsonFlag = False,
    version: Annotated[int | None, typer.Argument(help="A version; default: in force")]
    = None,
) -> None:
    """The policy in force, or one version (JSON: policies are documents)."""
    client = _client(ctx, as_json)
    path = "/v1/policy" if version is None else f"/v1/policy/{version}"
    typer.echo(json.dumps(client.get(path), indent=2))


@policy_app.command("versions")
def policy_versions(ctx: typer.Context, *, as_json: JsonFlag = False) -> None:
    """Every published version, oldest first: when, by whom, its escalation owners."""
    client = _client(ctx, as_json)
    rows = []
    for item in sorted(client.pages("/v1/policy/versions", 500), key=lambda v: v["version"]):
        doc = client.get(f"/v1/policy/{item['version']}")
        rows.append({"version": item["version"], "in_force": item["current"],
                     "published_at": item["published_at"],
                     "published_by": item.get("published_by"),
                     "escalation_owners": ", ".join(
                         level["owner_id"] for level in doc["escalation"]["levels"]),
                     "precedence": ", ".join(doc.get("precedence", []))})
    show(client, rows)


@policy_app.command("publish")
def policy_publish(
    ctx: typer.Context, *, as_json: JsonFlag = False,
    file: Annotated[Path, typer.Argument(help="A JSON policy document (partial: merged "
                                              "onto the version in force)")],
) -> None:
    """Publish the next policy version from a file (422 lists what is wrong)."""
    client = _client(ctx, as_json)
    response = client.request("PUT", "/v1/policy", body=_load(file))
    policy = response.json()
    if client.as_json:
        typer.echo(json.dumps(policy, indent=2))
    elif response.status_code == 201:
        out.print(f"published policy version {policy['version']}")
    else:
        out.print(f"identical to version {policy['version']}: nothing published")


# --- dead letters -------------------------------------------------------------------------

@dead_app.command("list")
def dead_list(
    ctx: typer.Context, *, as_json: JsonFlag = False,
    owner: Annotated[list[str] | None, typer.Option(
        "--owner", help="Only this escalation owner's (repeatable)")] = None,
    partner: Annotated[list[str] | None, typer.Option(
        "--partner", help="Only this partner's (repeatable)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Most per recipient")] = 100,
) -> None:
    """Notifications that exhausted their retries (status `dead`), newest first: every
    owner's and every partner's, or only those named."""
    client = _client(ctx, as_json)
    everything = owner is None and partner is None
    if everything:
        owner = [o["id"] for o in client.pages("/v1/owners", 500)]
        partner = [p["id"] for p in client.pages("/v1/partners", 500)]
    recipients = [("owners", o) for o in owner or []] + \
        [("partners", p) for p in partner or []]
    rows: list[dict[str, Any]] = []
    for kind, recipient in recipients:
        # Listing everything, a partner deleted meanwhile (404) is skipped.
        found = client.request("GET", f"/v1/{kind}/{recipient}/deliveries",
                               params={"status": "dead", "limit": limit},
                               allow=(404,) if everything else ())
        if found.status_code == 200:
            rows.extend(found.json()["items"])
    if client.as_json:
        show(client, rows)
        return
    show(client, [{**r, "last_attempt": (r.get("attempt_log") or [{}])[-1].get("at")}
                  for r in rows],
         ("id", "recipient_kind", "recipient_id", "type", "channel", "attempts",
          "last_error", "last_attempt"), title="dead letters")


@dead_app.command("redeliver")
def dead_redeliver(ctx: typer.Context, *, as_json: JsonFlag = False,
                   delivery_id: Annotated[list[str], typer.Argument()]) -> None:
    """Queue dead (or any) deliveries again."""
    client = _client(ctx, as_json)
    results = [client.request("POST", f"/v1/deliveries/{d}/redeliver").json()
               for d in delivery_id]
    show(client, results, ("id", "status"))


def _load(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        err.print(f"[red]error:[/red] cannot read {file}: {exc}")
        raise typer.Exit(2) from None
    if not isinstance(data, dict):
        err.print(f"[red]error:[/red] {file} is not a JSON object")
        raise typer.Exit(2)
    return data
