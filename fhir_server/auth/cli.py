"""`fhir-server users ...`, `fhir-server clients ...` and `fhir-server keys rotate`.

Each command opens the configured store (or reuses the running embedded one,
see `store.connection`), does one thing and prints JSON. Secrets are read from
standard input, never from the command line (which other users can see).
Every change is a security event, as the admin console's are (`_record`): the
same codes and target, with `cli` as who did it (the operator's shell account
is not one of ours to name).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer

from fhir_server.audit.recorder import AuditRecorder
from fhir_server.auth.clients import ClientRegistry, new_secret
from fhir_server.auth.keys import rotate
from fhir_server.auth.operator_tokens import issue_for_user
from fhir_server.auth.users import AccountError, Accounts, check_fhir_user
from fhir_server.cli_support import fail, load_settings, read_file, store_errors
from fhir_server.fhir.errors import FhirError
from fhir_server.fhir.indexing import ResourceIndexer
from fhir_server.settings import Settings
from fhir_server.store.auth_store import AuthStore
from fhir_server.store.connection import open_database
from fhir_server.store.resources import ResourceStore

users_app = typer.Typer(name="users", help="User accounts (patients, practitioners, admins).")
clients_app = typer.Typer(name="clients", help="Registered SMART apps (OAuth clients).")
keys_app = typer.Typer(name="keys", help="Token signing keys.")
T = TypeVar("T")


def _print(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _with_store(work: Callable[[AuthStore, Settings], Awaitable[T]]) -> T:
    settings = load_settings()

    async def run() -> T:
        async with open_database(settings) as database:
            store = AuthStore(database)
            await store.ensure_indexes()
            return await work(store, settings)

    try:
        with store_errors():
            return asyncio.run(run())
    except (AccountError, FhirError) as error:
        fail(str(error))


def _resources(store: AuthStore, settings: Settings) -> ResourceStore:
    """The resource store, indexing as the server does (an AuditEvent written here must be
    found by `AuditEvent?...` searches like the server's own)."""
    return ResourceStore(store.database, indexer=ResourceIndexer(settings.base_url))


async def _record(
    store: AuthStore,
    settings: Settings,
    event: str,
    target: tuple[str, str],
    detail: str | None = None,
) -> None:
    """An operator's change; `target` is what it acted on, as (a `TARGETS` key, its name)."""
    await AuditRecorder(_resources(store, settings)).record(
        event, success=True, who="cli", detail=detail, target=target
    )


def _stdin_secret(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        typer.secho(f"Error: no {what} on standard input.", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    return value


@users_app.command("add")
def users_add(
    username: Annotated[str, typer.Option(help="Login name.")],
    role: Annotated[str, typer.Option(help="patient, practitioner, frontdesk or admin.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
    fhir_user: Annotated[
        str | None, typer.Option(help="The user's FHIR resource, e.g. Patient/123.")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Address for password resets.")] = None,
) -> None:
    """Create an account; the password comes from standard input."""
    if not password_stdin:
        typer.secho("Error: pass --password-stdin and the password on stdin.", err=True)
        raise typer.Exit(1)
    password = _stdin_secret("password")

    async def work(store: AuthStore, settings: Settings) -> dict[str, Any]:
        if fhir_user:
            await check_fhir_user(ResourceStore(store.database), fhir_user, "--fhir-user")
        user = await Accounts(store, settings).add(username, password, role, fhir_user, email)
        await _record(store, settings, "user-added", ("account", user.username), f"role {role}")
        return {"username": user.username, "role": user.role, "fhir_user": user.fhir_user}

    _print(_with_store(work))


@users_app.command("list")
def users_list() -> None:
    """Every account, without its secrets."""
    _print(_with_store(lambda store, settings: Accounts(store, settings).list()))


@users_app.command("disable")
def users_disable(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Stop an account from logging in, revoke its refresh tokens, close its calendar feed."""

    async def work(store: AuthStore, settings: Settings) -> bool:
        if not await Accounts(store, settings).disable(username):
            return False
        await _record(store, settings, "user-changed", ("account", username.lower()), "disabled")
        return True

    if not _with_store(work):
        typer.secho(f"Error: no user {username!r}.", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    _print({"username": username.lower(), "disabled": True})


@users_app.command("totp")
def users_totp(username: Annotated[str, typer.Argument(help="Login name.")]) -> None:
    """Turn on the TOTP second factor; prints the secret for an authenticator app."""

    async def work(store: AuthStore, settings: Settings) -> str:
        secret = await Accounts(store, settings).enable_totp(username)
        await _record(store, settings, "second-factor-on", ("account", username.lower()))
        return secret

    secret = _with_store(work)
    _print({"username": username.lower(), "totp_secret": secret})


@clients_app.command("add")
def clients_add(
    client_id: Annotated[str, typer.Option(help="The client_id apps send.")],
    name: Annotated[str, typer.Option(help="Shown to users on the consent page.")],
    type_: Annotated[str, typer.Option("--type", help="public, confidential or backend.")],
    scope: Annotated[str, typer.Option(help="The most this client may be granted.")],
    redirect_uri: Annotated[
        list[str] | None, typer.Option(help="Exact redirect URI; repeat for several.")
    ] = None,
    jwks_file: Annotated[
        Path | None, typer.Option(help="JSON Web Key Set with the client's public keys.")
    ] = None,
    jwks_uri: Annotated[str | None, typer.Option(help="URL of the client's JWKS.")] = None,
    secret_stdin: Annotated[
        bool, typer.Option("--secret-stdin", help="Read the client secret from stdin.")
    ] = False,
    no_pkce: Annotated[
        bool,
        typer.Option("--no-pkce", help="Legacy SMART v1 confidential client that sends no PKCE."),
    ] = False,
    resource_server: Annotated[
        bool,
        typer.Option(
            "--resource-server",
            help="May introspect tokens issued to any client (others: only their own).",
        ),
    ] = False,
) -> None:
    """Register a client and print it as JSON (a generated secret is shown once)."""
    jwks = _jwks(jwks_file) if jwks_file else None
    secret = _stdin_secret("client secret") if secret_stdin else None
    generated = type_ == "confidential" and secret is None and not (jwks or jwks_uri)
    if generated:
        secret = new_secret()

    async def work(store: AuthStore, settings: Settings) -> dict[str, Any]:
        client = await ClientRegistry(store, settings).add(
            client_id,
            name,
            type_,
            scope,
            redirect_uris=redirect_uri or [],
            secret=secret,
            jwks=jwks,
            jwks_uri=jwks_uri,
            require_pkce=not no_pkce,
            resource_server=resource_server,
        )
        await _record(store, settings, "app-registered", ("app", client_id))
        return client.public_view()

    view = _with_store(work)
    if generated:
        view["client_secret"] = secret
    _print(view)


def _jwks(path: Path) -> dict[str, Any]:
    try:
        value = orjson.loads(read_file(path, "--jwks-file"))
    except orjson.JSONDecodeError:
        fail(f"--jwks-file {path} is not JSON (a JSON Web Key Set is expected).")
    if not isinstance(value, dict):
        fail(f"--jwks-file {path} is not a JSON Web Key Set (an object with 'keys').")
    return value


@users_app.command("token")
def users_token(
    username: Annotated[str, typer.Argument(help="The account to act as.")],
    scope: Annotated[
        str, typer.Option(help="Scopes: patient/... for a patient, user/... otherwise.")
    ] = "user/*.rs",
) -> None:
    """Mint an access token for an account (for scripts and curl), printed as a token response."""

    async def work(store: AuthStore, settings: Settings) -> dict[str, Any]:
        return await issue_for_user(store, _resources(store, settings), settings, username, scope)

    _print(_with_store(work))


@clients_app.command("list")
def clients_list() -> None:
    """Every registered client."""

    async def work(store: AuthStore, settings: Settings) -> list[dict[str, Any]]:
        return [c.public_view() for c in await ClientRegistry(store, settings).list()]

    _print(_with_store(work))


@clients_app.command("remove")
def clients_remove(client_id: Annotated[str, typer.Argument(help="The client_id.")]) -> None:
    """Unregister a client (its tokens stop being refreshable)."""

    async def work(store: AuthStore, settings: Settings) -> bool:
        if not await ClientRegistry(store, settings).remove(client_id):
            return False
        await _record(store, settings, "app-removed", ("app", client_id))
        return True

    if not _with_store(work):
        typer.secho(f"Error: no client {client_id!r}.", fg=typer.colors.RED, err=True)
        raise typer.Exit(1)
    _print({"client_id": client_id, "removed": True})


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Start signing with a new key; old public keys stay published until their tokens expire."""

    async def work(store: AuthStore, settings: Settings) -> str:
        kid = await rotate(store, settings)
        await _record(store, settings, "signing-key-rotated", ("key", kid))
        return kid

    _print({"signing_kid": _with_store(work)})
