-- Data supply: every load of a dataset that passed its check is a snapshot, named by the
-- sha256 of the canonical file written; one pointer per dataset says which one serves.
-- Refused loads leave no row here, only a `snapshot.refused` audit entry.

CREATE TABLE snapshots (
    dataset TEXT NOT NULL,
    snapshot_id TEXT NOT NULL,
    origin TEXT NOT NULL,
    row_count BIGINT NOT NULL CHECK (row_count >= 0),
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    policy_version TEXT NOT NULL,
    inputs TEXT NOT NULL,
    loaded_by TEXT NOT NULL,
    loaded_at TEXT NOT NULL,
    PRIMARY KEY (dataset, snapshot_id)
);
CREATE INDEX snapshots_by_time ON snapshots (dataset, loaded_at);

CREATE TABLE dataset_snapshots (
    dataset TEXT PRIMARY KEY,
    snapshot_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    FOREIGN KEY (dataset, snapshot_id) REFERENCES snapshots (dataset, snapshot_id)
);
