"""Alembic environment: runs on the connection `migrations.upgrade` hands over."""

from alembic import context

from ledger.storage import StoreConfig

store_config: StoreConfig = context.config.attributes["store_config"]
connection = context.config.attributes["connection"]

context.configure(
    connection=connection,
    version_table_schema=store_config.schema,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations(store_config=store_config)
