"""The first start creates the admin, once."""

from __future__ import annotations

import io

from hub.api import create_app
from hub.security.context import SecurityContext
from hub.security.roles import Role
from hub.security.setup import ensure_admin, first_start
from tests.hub.security.conftest import settings_for


def _ctx(store, tmp_path) -> SecurityContext:
    return SecurityContext.build(settings_for(tmp_path).auth, store, tmp_path)


def test_admin_from_environment(store, tmp_path, monkeypatch, capsys):
    """STREAMFLOW_ADMIN_PASSWORD becomes the admin's password; nothing printed."""
    monkeypatch.setenv("STREAMFLOW_ADMIN_PASSWORD", "from-the-environment")
    ctx = _ctx(store, tmp_path)

    created = ensure_admin(ctx)

    admin = store.get_user("admin")
    assert created is True
    assert admin.role is Role.ADMIN
    assert ctx.passwords.verify(admin.password_hash, "from-the-environment")
    assert capsys.readouterr().err == ""


def test_generated_password_printed_once(sqlite_store, tmp_path):
    """Without the variable a password is generated, printed once, and works."""
    ctx = _ctx(sqlite_store, tmp_path)
    out = io.StringIO()

    first = ensure_admin(ctx, out=out)
    second = ensure_admin(ctx, out=out)

    (line,) = out.getvalue().splitlines()
    password = line.split(" with password ")[1].split(" ")[0]
    assert (first, second) == (True, False)
    assert line.startswith("streamflow: first start: created user 'admin'")
    assert len(password) >= 20
    assert ctx.passwords.verify(sqlite_store.get_user("admin").password_hash, password)


def test_app_start_prints_to_stderr_once(sqlite_store, tmp_path, capsys):
    """create_app makes the admin at first start; a second start says nothing."""
    create_app(sqlite_store, settings_for(tmp_path))
    first = capsys.readouterr().err
    create_app(sqlite_store, settings_for(tmp_path))
    second = capsys.readouterr().err

    assert first.count("created user 'admin' with password") == 1
    assert second == ""
    assert [u.name for u in sqlite_store.list_users()] == ["admin"]


def test_no_admin_when_auth_disabled(sqlite_store, tmp_path):
    """With auth.enabled false no user is made and no key file written."""
    create_app(sqlite_store, settings_for(tmp_path, enabled=False))

    assert sqlite_store.list_users() == []
    assert not (tmp_path / "jwt_secret").exists()


def test_first_start_outside_the_app(sqlite_store, tmp_path):
    """first_start makes the admin as the app would, and only once."""
    out = io.StringIO()
    settings = settings_for(tmp_path)

    made = [first_start(sqlite_store, settings, out) for _ in range(2)]

    assert made == [True, False]
    assert len(out.getvalue().splitlines()) == 1
