"""The ``users`` table of each tenant schema (declared without a schema; the
tenant transaction renders it into ``t_<tenant>``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column, DateTime, MetaData, Table, Text, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.tenant.domain.user import NewUser, Role, User

metadata = MetaData()
users = Table(
    "users", metadata,
    Column("user_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class UserRecord:
    user: User
    password_hash: str


def _user(row: Any, tenant_id: str) -> User:
    return User(row.user_id, tenant_id, row.email, row.display_name, Role(row.role), row.create_time)


async def insert_user(conn: AsyncConnection, tenant_id: str, new: NewUser, password_hash: str) -> User | None:
    """The new user, or None when the email is taken in this tenant."""
    row = (await conn.execute(
        insert(users).values(user_id=str(uuid.uuid4()), email=new.email, display_name=new.display_name,
                             role=new.role.value, password_hash=password_hash)
        .on_conflict_do_nothing().returning(*users.c)
    )).first()
    return None if row is None else _user(row, tenant_id)


async def user_by_email(conn: AsyncConnection, tenant_id: str, email: str) -> UserRecord | None:
    row = (await conn.execute(select(users).where(func.lower(users.c.email) == email.lower()))).first()
    return None if row is None else UserRecord(_user(row, tenant_id), row.password_hash)


async def set_password_hash(conn: AsyncConnection, user_id: str, password_hash: str) -> None:
    await conn.execute(update(users).where(users.c.user_id == user_id).values(password_hash=password_hash))


async def delete_user(conn: AsyncConnection, user_id: str) -> bool:
    """Removes the user; False when there is none with this id in the tenant."""
    row = (await conn.execute(delete(users).where(users.c.user_id == user_id).returning(users.c.user_id))).first()
    return row is not None
