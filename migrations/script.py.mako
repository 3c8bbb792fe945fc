"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}
"""

from alembic import op

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade(store_config) -> None:  # type: ignore[no-untyped-def]
    ${upgrades if upgrades else "pass"}


def downgrade(store_config) -> None:  # type: ignore[no-untyped-def]
    ${downgrades if downgrades else "pass"}
