"""firmware_tracking: SIP#7 Firmware Distribution Tracking records

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 (issue 11: SIP#7 tracking in the results store)

"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table('firmware_tracking',
    sa.Column('request_id', sa.String(length=100), nullable=False),
    sa.Column('device_id', sa.String(length=32), nullable=False),
    sa.Column('device_type', sa.String(length=16), nullable=True),
    sa.Column('firmware_version', sa.String(length=64), nullable=True),
    sa.Column('current_status', sa.String(length=64), nullable=False),
    sa.Column('completion_status', sa.String(length=16), nullable=False),
    sa.Column('updated_ns', sa.BigInteger(), nullable=False),
    sa.Column('history', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('request_id', 'device_id')
    )
    op.create_index(op.f('ix_firmware_tracking_completion_status'), 'firmware_tracking',
                    ['completion_status'], unique=False)
    op.create_index(op.f('ix_firmware_tracking_updated_ns'), 'firmware_tracking',
                    ['updated_ns'], unique=False)
    op.create_index('ix_firmware_tracking_device_id', 'firmware_tracking', ['device_id'],
                    unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index('ix_firmware_tracking_device_id', table_name='firmware_tracking')
    op.drop_index(op.f('ix_firmware_tracking_updated_ns'), table_name='firmware_tracking')
    op.drop_index(op.f('ix_firmware_tracking_completion_status'),
                  table_name='firmware_tracking')
    op.drop_table('firmware_tracking')
