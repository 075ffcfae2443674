/// Slipway's schema, as an ordered list of migrations. Append; never edit a released one.
public enum SlipwaySchema {
    /// Every migration, oldest first.
    public static let migrations: [Migration] = [v1, v2, v3, v4, v5, v6, v7, v8, v9, v10]

    /// Schema v1: the whole system's durable state.
    ///
    /// Indexes exist only for the hot paths: claiming queued jobs, finding running
    /// jobs by lease or worker, and idempotent submission. History tables are
    /// append-only and pruned by age, not indexed for ad-hoc search.
    static let v1 = Migration(version: 1, name: "initial schema", sql: """
        CREATE TYPE job_status AS ENUM ('queued', 'running', 'succeeded', 'failed', 'cancelled');

        CREATE TABLE jobs (
            id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            idempotency_key  text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
            repo_url         text NOT NULL,
            commit_sha       text NOT NULL,
            artifact_name    text NOT NULL,
            recipe           text NOT NULL DEFAULT '',
            artifact_path    text NOT NULL DEFAULT '',
            labels           jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
            status           job_status NOT NULL DEFAULT 'queued',
            attempt          integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
            max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts BETWEEN 1 AND 100),
            timeout_seconds  integer NOT NULL DEFAULT 3600 CHECK (timeout_seconds > 0),
            fresh            boolean NOT NULL DEFAULT false,
            worker_id        text,
            -- Absolute deadline of the running attempt (start + timeout). Worker
            -- liveness is per worker (workers.last_heartbeat), never a write per job.
            lease_expires_at timestamptz,
            -- Earliest time a queued job may be claimed: retry back-off.
            not_before       timestamptz NOT NULL DEFAULT now(),
            cancel_requested boolean NOT NULL DEFAULT false,
            cache_hit        boolean NOT NULL DEFAULT false,
            artifact_digest  text,
            error            text,
            created_at       timestamptz NOT NULL DEFAULT now(),
            started_at       timestamptz,
            finished_at      timestamptz,
            CONSTRAINT jobs_idempotency_key_unique UNIQUE (idempotency_key),
            CONSTRAINT jobs_running_has_owner CHECK (status <> 'running' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL)),
            CONSTRAINT jobs_terminal_has_finish CHECK (status IN ('queued', 'running') OR finished_at IS NOT NULL)
        );
        -- The claim path: oldest claimable first, skipping locked rows.
        CREATE INDEX jobs_claimable ON jobs (created_at, id) WHERE status = 'queued';
        -- Lease expiry and lost-worker sweeps touch running jobs only.
        CREATE INDEX jobs_running_lease ON jobs (lease_expires_at) WHERE status = 'running';
        CREATE INDEX jobs_running_worker ON jobs (worker_id) WHERE status = 'running';
        -- The build cache: a succeeded build of the same (repo, commit, recipe).
        CREATE INDEX jobs_build_cache ON jobs (repo_url, commit_sha, recipe, artifact_path) WHERE status = 'succeeded';

        CREATE TABLE job_logs (
            job_id     uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
            attempt    integer NOT NULL,
            seq        bigint NOT NULL,
            -- Where this chunk starts in the attempt's log; lets readers resume by offset.
            byte_offset bigint NOT NULL,
            stream     smallint NOT NULL,
            data       bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (job_id, attempt, seq)
        );

        -- One row per worker process start.
        CREATE TABLE workers (
            id             text PRIMARY KEY,
            labels         jsonb NOT NULL DEFAULT '{}',
            slots          integer NOT NULL DEFAULT 1 CHECK (slots >= 0),
            region         text NOT NULL DEFAULT '',
            started_at     timestamptz NOT NULL DEFAULT now(),
            last_heartbeat timestamptz NOT NULL DEFAULT now(),
            lost_at        timestamptz
        );

        -- The outbox. Sequence numbers come from event_sequence, not a bigserial:
        -- taking the counter row's lock in the writing transaction makes numbers
        -- gap-free and in commit order, which subscribers rely on to detect loss.
        CREATE TABLE event_sequence (
            singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
            last_seq  bigint NOT NULL
        );
        INSERT INTO event_sequence (singleton, last_seq) VALUES (true, 0);

        CREATE TABLE events (
            seq        bigint PRIMARY KEY,
            type       text NOT NULL,
            topic      text NOT NULL DEFAULT '',
            payload    bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE artifacts (
            digest        text PRIMARY KEY CHECK (digest ~ '^[0-9a-f]{64}$'),
            name          text NOT NULL,
            size          bigint NOT NULL CHECK (size >= 0),
            piece_size    integer NOT NULL CHECK (piece_size > 0),
            -- The pieces' SHA-256 digests, 32 bytes each, concatenated in order.
            piece_sha256  bytea NOT NULL,
            job_id        uuid REFERENCES jobs (id) ON DELETE SET NULL,
            origin_region text NOT NULL,
            created_at    timestamptz NOT NULL DEFAULT now(),
            deployable_at timestamptz
        );

        CREATE TYPE replica_status AS ENUM ('pending', 'copying', 'complete', 'failed');

        CREATE TABLE replicas (
            artifact_digest text NOT NULL REFERENCES artifacts (digest) ON DELETE CASCADE,
            region          text NOT NULL,
            status          replica_status NOT NULL DEFAULT 'pending',
            pieces_done     integer NOT NULL DEFAULT 0,
            error           text,
            updated_at      timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (artifact_digest, region)
        );

        -- The target build of a service: region '' is the global target.
        CREATE TABLE targets (
            service         text NOT NULL,
            region          text NOT NULL DEFAULT '',
            artifact_digest text NOT NULL REFERENCES artifacts (digest),
            version         bigint NOT NULL CHECK (version > 0),
            set_by          text NOT NULL,
            set_at          timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (service, region)
        );

        -- Every target change ever made: who, when, from, to.
        CREATE TABLE deployments (
            id          bigserial PRIMARY KEY,
            service     text NOT NULL,
            region      text NOT NULL DEFAULT '',
            from_digest text,
            to_digest   text NOT NULL,
            version     bigint NOT NULL,
            action      text NOT NULL CHECK (action IN ('deploy', 'rollback')),
            set_by      text NOT NULL,
            set_at      timestamptz NOT NULL DEFAULT now()
        );
        """)

    /// Schema v2: each region's latest aggregated agent report. One row per
    /// region, replaced in place: machines never write to PostgreSQL.
    static let v2 = Migration(version: 2, name: "region agent reports", sql: """
        CREATE TABLE region_reports (
            region      text PRIMARY KEY,
            report      bytea NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now()
        );
        """)

    /// Schema v3: attempts that never reached a worker. `attempt` stays the
    /// fence (it counts every assignment and is never reused); the retry cap
    /// counts `attempt - attempts_unused`.
    static let v3 = Migration(version: 3, name: "attempts that never reached a worker", sql: """
        ALTER TABLE jobs ADD COLUMN attempts_unused integer NOT NULL DEFAULT 0 CHECK (attempts_unused >= 0);
        """)

    /// Schema v4: the request a target change answered. A rollback is not
    /// idempotent (a second one goes back further), and a client resends a
    /// request whose answer it missed: the same request is applied once.
    static let v4 = Migration(version: 4, name: "target changes remember their request", sql: """
        ALTER TABLE deployments ADD COLUMN request_id text;
        CREATE UNIQUE INDEX deployments_request ON deployments (service, region, request_id) WHERE request_id IS NOT NULL;
        """)

    /// Schema v5: who did it, as authenticated (the `role/name` of the key the
    /// request came with; NULL when the coordinator ran `--insecure`). `set_by`
    /// stays the free-text comment the operator typed.
    static let v5 = Migration(version: 5, name: "authenticated identities in jobs and deployments; the audit log", sql: """
        ALTER TABLE jobs ADD COLUMN submitted_by text;
        ALTER TABLE deployments ADD COLUMN actor text;

        -- Every privileged action (cancel, deploy, rollback) and every refusal.
        CREATE TABLE audit (
            id       bigserial PRIMARY KEY,
            at       timestamptz NOT NULL DEFAULT now(),
            identity text NOT NULL DEFAULT '',
            action   text NOT NULL,
            object   text NOT NULL DEFAULT '',
            outcome  text NOT NULL CHECK (outcome IN ('ok', 'refused', 'failed')),
            detail   text NOT NULL DEFAULT ''
        );
        CREATE INDEX audit_at ON audit (at);
        """)

    /// Schema v6: rollouts. A global deploy is a rollout moved wave by wave; the
    /// global target carries the rollout, the build outside its waves and each
    /// region's share. A regional override an operator cleared keeps its row
    /// (no build) so its version stays monotonic.
    static let v6 = Migration(version: 6, name: "rollouts in waves; clearing regional overrides", sql: """
        CREATE TABLE rollouts (
            id            bigserial PRIMARY KEY,
            service       text NOT NULL,
            from_digest   text,
            to_digest     text NOT NULL,
            plan_name     text NOT NULL,
            plan          jsonb NOT NULL,
            state         text NOT NULL CHECK (state IN ('progressing', 'paused', 'halted', 'rolled_back', 'succeeded', 'aborted')),
            wave          integer NOT NULL DEFAULT 0,
            waves         jsonb NOT NULL,
            reason        text NOT NULL DEFAULT '',
            holding_since bigint,
            wave_version  bigint NOT NULL DEFAULT 0,
            -- The machines that failed the gate, as the regions reported them when it halted.
            failures      jsonb NOT NULL DEFAULT '[]',
            -- The last operator request applied (pause, resume, promote, abort), so a resend is answered, not applied twice.
            last_request_id text,
            set_by        text NOT NULL,
            actor         text,
            request_id    text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            updated_at    timestamptz NOT NULL DEFAULT now()
        );
        -- At most one rollout per service is not over.
        CREATE UNIQUE INDEX rollouts_active ON rollouts (service) WHERE state IN ('progressing', 'paused', 'halted');
        CREATE INDEX rollouts_service ON rollouts (service, id);

        ALTER TABLE targets ALTER COLUMN artifact_digest DROP NOT NULL;
        ALTER TABLE targets ADD COLUMN rollout_id bigint REFERENCES rollouts (id),
                            ADD COLUMN stable_digest text,
                            ADD COLUMN shares jsonb,
                            ADD COLUMN prefetch boolean NOT NULL DEFAULT false;
        ALTER TABLE deployments ALTER COLUMN to_digest DROP NOT NULL;
        ALTER TABLE deployments DROP CONSTRAINT deployments_action_check;
        ALTER TABLE deployments ADD CONSTRAINT deployments_action_check CHECK (action IN ('deploy', 'rollback', 'clear', 'abort'));
        ALTER TABLE deployments ADD COLUMN rollout_id bigint;
        """)

    /// Schema v7: provenance by full SHA. `commit_sha` stays what was
    /// submitted (a ref or short SHA too: retries of the same idempotency key
    /// compare against it); `resolved_sha` is the full SHA a worker checked out,
    /// known at once for a full-SHA submission. The build cache looks builds up
    /// by it, so a long enough short SHA of a built commit is a hit too.
    /// `build_env` records the environment the worker gave the recipe.
    static let v7 = Migration(version: 7, name: "jobs record the full SHA they built and their build environment", sql: """
        ALTER TABLE jobs ADD COLUMN resolved_sha text CHECK (resolved_sha ~ '^[0-9a-f]{40}$');
        -- What the recipe got from its worker (PATH, variables; secrets as "(secret)").
        ALTER TABLE jobs ADD COLUMN build_env jsonb;
        UPDATE jobs SET resolved_sha = commit_sha WHERE commit_sha ~ '^[0-9a-f]{40}$';
        DROP INDEX jobs_build_cache;
        CREATE INDEX jobs_build_cache ON jobs (repo_url, resolved_sha text_pattern_ops) WHERE status = 'succeeded';
        """)

    /// Schema v8: webhook deliveries. One row per webhook URL: the last outbox
    /// event its receiver acknowledged, and how delivery is going, so a coordinator
    /// that restarts (or a standby that takes over) continues where delivery stopped.
    static let v8 = Migration(version: 8, name: "webhook delivery cursors", sql: """
        CREATE TABLE webhook_cursors (
            url             text PRIMARY KEY,
            last_seq        bigint NOT NULL,
            delivered_at    timestamptz,
            failures        integer NOT NULL DEFAULT 0,
            last_error      text,
            last_failure_at timestamptz,
            created_at      timestamptz NOT NULL DEFAULT now()
        );
        """)

    /// Schema v9: pieces cut by content. Their lengths, 4 bytes each (big-endian)
    /// in order; NULL for an artifact of fixed-size pieces.
    static let v9 = Migration(version: 9, name: "content-defined pieces", sql: """
        ALTER TABLE artifacts ADD COLUMN piece_lengths bytea
            CHECK (piece_lengths IS NULL OR length(piece_lengths) * 8 = length(piece_sha256));
        """)

    /// Schema v10: pieces checked block by block. The manifest's block size (0: none)
    /// and each piece's root, 32 bytes each in order (NULL without blocks), so a
    /// manifest the coordinator rebuilds from its row is the one the worker made.
    static let v10 = Migration(version: 10, name: "block roots of pieces", sql: """
        ALTER TABLE artifacts ADD COLUMN block_size integer NOT NULL DEFAULT 0 CHECK (block_size >= 0);
        ALTER TABLE artifacts ADD COLUMN piece_roots bytea
            CHECK ((piece_roots IS NULL) = (block_size = 0) AND (piece_roots IS NULL OR length(piece_roots) = length(piece_sha256)));
        """)
}
