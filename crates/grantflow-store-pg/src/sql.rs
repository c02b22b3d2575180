//! The statements grantflow runs, with its schema filled in.

/// The statements, with the schema filled in.
pub(crate) struct Sql {
    pub(crate) head: String,
    pub(crate) head_position: String,
    pub(crate) head_for_update: String,
    pub(crate) update_head: String,
    pub(crate) insert_events: String,
    pub(crate) insert_commands: String,
    pub(crate) stream_versions: String,
    pub(crate) recorded_commands: String,
    pub(crate) read: String,
    pub(crate) read_stream: String,
    pub(crate) stream_version: String,
    pub(crate) commands: String,
    pub(crate) save_snapshot: String,
    pub(crate) load_snapshot: String,
    pub(crate) save_checkpoint: String,
    pub(crate) move_checkpoint_mark: String,
    pub(crate) checkpoint_mark: String,
    pub(crate) load_checkpoint: String,
    pub(crate) last_event: String,
    pub(crate) channel: String,
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Sql {
        let s = crate::schema::quoted(schema);
        Sql {
            head: format!("SELECT position, hash, recorded_at FROM {s}.head WHERE singleton"),
            head_position: format!("SELECT position FROM {s}.head WHERE singleton"),
            head_for_update: format!(
                "SELECT position, hash, recorded_at FROM {s}.head WHERE singleton FOR UPDATE"
            ),
            update_head: format!(
                "UPDATE {s}.head SET position = $1, hash = $2, recorded_at = $3 WHERE singleton"
            ),
            insert_events: format!(
                "INSERT INTO {s}.events \
                 (position, stream, version, event_type, command_id, recorded_at, canonical, hash) \
                 SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], \
                 $5::text[], $6::text[], $7::bytea[], $8::bytea[])"
            ),
            insert_commands: format!(
                "INSERT INTO {s}.commands (command_id, body_hash, positions) \
                 SELECT c, h, p::bigint[] FROM unnest($1::text[], $2::bytea[], $3::text[]) \
                 AS t(c, h, p)"
            ),
            // One backward probe of the (stream, version) index per stream: `max(version)`
            // over `stream = ANY($1)` with a batch's hundreds of streams is planned as a
            // (parallel) scan of the whole table, which each append would pay under the lock.
            stream_versions: format!(
                "SELECT s.stream, v.version FROM unnest($1::text[]) AS s(stream) \
                 CROSS JOIN LATERAL (SELECT e.version FROM {s}.events e \
                 WHERE e.stream = s.stream ORDER BY e.version DESC LIMIT 1) AS v"
            ),
            recorded_commands: format!(
                "SELECT command_id FROM {s}.commands WHERE command_id = ANY($1)"
            ),
            read: format!(
                "SELECT position, canonical, hash FROM {s}.events \
                 WHERE position BETWEEN $1 AND $2 ORDER BY position"
            ),
            read_stream: format!(
                "SELECT position, canonical, hash FROM {s}.events \
                 WHERE stream = $1 AND version >= $2 ORDER BY version LIMIT $3"
            ),
            stream_version: format!(
                "SELECT COALESCE(max(version), 0) FROM {s}.events WHERE stream = $1"
            ),
            commands: format!(
                "SELECT c.command_id, c.body_hash, p.position, e.stream, e.version, e.event_type \
                 FROM {s}.commands c \
                 LEFT JOIN LATERAL unnest(c.positions) WITH ORDINALITY AS p(position, ord) \
                 ON true \
                 LEFT JOIN {s}.events e ON e.position = p.position \
                 WHERE c.command_id = ANY($1) ORDER BY c.command_id, p.ord"
            ),
            save_snapshot: format!(
                "INSERT INTO {s}.snapshots (name, position, bytes, checksum) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
                 bytes = EXCLUDED.bytes, checksum = EXCLUDED.checksum, saved_at = now()"
            ),
            load_snapshot: format!(
                "SELECT position, bytes, checksum FROM {s}.snapshots WHERE name = $1"
            ),
            save_checkpoint: format!(
                "INSERT INTO {s}.checkpoints (name, key, position, bytes, checksum) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name, key, position) DO UPDATE SET bytes = EXCLUDED.bytes, \
                 checksum = EXCLUDED.checksum"
            ),
            move_checkpoint_mark: format!(
                "INSERT INTO {s}.checkpoint_marks (name, through) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE \
                 SET through = GREATEST({s}.checkpoint_marks.through, EXCLUDED.through)"
            ),
            checkpoint_mark: format!("SELECT through FROM {s}.checkpoint_marks WHERE name = $1"),
            load_checkpoint: format!(
                "SELECT position, bytes, checksum FROM {s}.checkpoints \
                 WHERE name = $1 AND key = $2 AND position <= $3 \
                 ORDER BY position DESC LIMIT 1"
            ),
            last_event: format!(
                "SELECT position, hash FROM {s}.events ORDER BY position DESC LIMIT 1"
            ),
            channel: format!("grantflow_head_{schema}"),
        }
    }
}
