"""live push: phone device ids, connection state, unacknowledged alerts, stored positions

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("unit") as b:
        b.add_column(sa.Column("device_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True))
        b.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("connected", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.create_index("ix_unit_device_id", ["device_id"], unique=True)
    with op.batch_alter_table("assignment") as b:
        b.add_column(sa.Column("unack_alerted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "position",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("speed_mps", sa.Float(), nullable=True),
        sa.Column("bearing", sa.Float(), nullable=True),
        sa.Column("altitude_m", sa.Float(), nullable=True),
        sa.Column("accuracy_m", sa.Float(), nullable=True),
        sa.Column("battery", sa.Float(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("flag", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(["unit_id"], ["unit.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_position_unit_id", "position", ["unit_id"])
    op.create_index("ix_position_incident_id", "position", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_position_incident_id", "position")
    op.drop_index("ix_position_unit_id", "position")
    op.drop_table("position")
    with op.batch_alter_table("assignment") as b:
        b.drop_column("unack_alerted_at")
    with op.batch_alter_table("unit") as b:
        b.drop_index("ix_unit_device_id")
        b.drop_column("connected")
        b.drop_column("last_seen_at")
        b.drop_column("device_id")
