"""The ``platform`` schema of the tenant database: tenants and platform admins.

Tables are declared without a schema and rendered into ``platform`` by the
connection's schema_translate_map (the same mechanism as tenant schemas), so
services.runtime.idempotency works here unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    MetaData,
    Table,
    Text,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from services.runtime.db import Database
from services.tenant.domain.paging import Cursor
from services.tenant.domain.tenant import NewTenant, Tenant, TenantState

SCHEMA = "platform"

metadata = MetaData()
tenants = Table(
    "tenants", metadata,
    Column("tenant_id", Text, primary_key=True),
    Column("display_name", Text, nullable=False),
    Column("currency_code", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("provisioned", Boolean, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
admins = Table(
    "admins", metadata,
    Column("admin_id", Text, primary_key=True),
    Column("email", Text, nullable=False),
    Column("display_name", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("update_time", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class AdminRecord:
    admin_id: str
    email: str
    display_name: str
    password_hash: str
    create_time: Any


def _tenant(row: Any) -> Tenant:
    return Tenant(row.tenant_id, row.display_name, row.currency_code, TenantState(row.state),
                  row.provisioned, row.create_time, row.update_time)


class PlatformStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        async with self.db.engine.begin() as conn:
            yield await conn.execution_options(schema_translate_map={None: SCHEMA})

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        async with self.db.engine.connect() as conn:
            yield await conn.execution_options(schema_translate_map={None: SCHEMA})

    # --- tenants ---------------------------------------------------------------

    @staticmethod
    async def insert_tenant(conn: AsyncConnection, new: NewTenant) -> Tenant | None:
        """The new tenant, or None when its id is taken."""
        row = (await conn.execute(
            insert(tenants).values(tenant_id=new.tenant_id, display_name=new.display_name,
                                   currency_code=new.currency_code, state=TenantState.PROVISIONING.value,
                                   provisioned=False)
            .on_conflict_do_nothing().returning(*tenants.c)
        )).first()
        return None if row is None else _tenant(row)

    @staticmethod
    async def tenant(conn: AsyncConnection, tenant_id: str, *, for_update: bool = False) -> Tenant | None:
        query = select(tenants).where(tenants.c.tenant_id == tenant_id)
        if for_update:
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        return None if row is None else _tenant(row)

    @staticmethod
    async def save_tenant(conn: AsyncConnection, tenant: Tenant) -> Tenant:
        row = (await conn.execute(
            update(tenants).where(tenants.c.tenant_id == tenant.tenant_id)
            .values(state=tenant.state.value, provisioned=tenant.provisioned, update_time=func.now())
            .returning(*tenants.c)
        )).one()
        return _tenant(row)

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        async with self.reading() as conn:
            return await self.tenant(conn, tenant_id)

    async def list_tenants(self, after: Cursor | None, limit: int) -> Sequence[Tenant]:
        """Oldest first; ``limit`` rows after the cursor."""
        query = select(tenants).order_by(tenants.c.create_time, tenants.c.tenant_id).limit(limit)
        if after is not None:
            query = query.where(
                tuple_(tenants.c.create_time, tenants.c.tenant_id) > tuple_(after.create_time, after.tenant_id))
        async with self.reading() as conn:
            return [_tenant(r) for r in await conn.execute(query)]

    async def unprovisioned(self) -> list[str]:
        async with self.reading() as conn:
            rows = await conn.execute(select(tenants.c.tenant_id).where(tenants.c.provisioned.is_(False))
                                      .order_by(tenants.c.create_time))
            return [r.tenant_id for r in rows]

    # --- platform admins -------------------------------------------------------

    async def admin_by_email(self, email: str) -> AdminRecord | None:
        async with self.reading() as conn:
            row = (await conn.execute(select(admins).where(func.lower(admins.c.email) == email.lower()))).first()
        if row is None:
            return None
        return AdminRecord(row.admin_id, row.email, row.display_name, row.password_hash, row.create_time)

    async def insert_admin(self, email: str, display_name: str, password_hash: str) -> AdminRecord | None:
        """The new admin, or None when the email is taken."""
        async with self.transaction() as conn:
            row = (await conn.execute(
                insert(admins).values(admin_id=str(uuid.uuid4()), email=email.lower(), display_name=display_name,
                                      password_hash=password_hash)
                .on_conflict_do_nothing().returning(*admins.c)
            )).first()
        if row is None:
            return None
        return AdminRecord(row.admin_id, row.email, row.display_name, row.password_hash, row.create_time)

    async def set_admin_password(self, admin_id: str, password_hash: str) -> None:
        async with self.transaction() as conn:
            await conn.execute(update(admins).where(admins.c.admin_id == admin_id)
                               .values(password_hash=password_hash, update_time=func.now()))
