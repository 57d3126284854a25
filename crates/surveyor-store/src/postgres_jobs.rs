//! The census jobs aggregate on PostgreSQL: shards leased with `FOR UPDATE SKIP LOCKED`,
//! leases judged by the server's clock, completions of one job serialized on the job's row.

use std::borrow::Cow;
use std::time::Duration;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};
use time::OffsetDateTime;

use crate::jobs::{
    check_new, Beat, CensusJob, CensusJobStore, Claim, Completion, Control, JobState, NewCensusJob,
    ShardKey, ShardLease, ShardProgress, ShardRecord, ShardState,
};
use crate::postgres::PgStore;
use crate::{Backend, ScanId, StoreError};

const BACKEND: Backend = Backend::Postgres;

const SELECT_JOBS: &str = "SELECT id, name, scan_id, state, params::text AS params, shard_count, \
     created_at, finished_at, paused_at, paused_seconds FROM census_jobs";

const SELECT_SHARDS: &str = "SELECT shard, state, lease_owner, lease_expires, heartbeat_at, \
     checkpoint::text AS checkpoint, targets_total, targets_done, leases, started_at, \
     finished_at FROM census_shards";

/// Leases of a job that are live by the server's clock.
const LIVE_LEASES: &str = "SELECT count(*) FROM census_shards \
     WHERE job_id = $1 AND state = 'leased' AND lease_expires > now()";

#[async_trait::async_trait]
impl CensusJobStore for PgStore {
    async fn create_job(&self, job: &NewCensusJob) -> Result<CensusJob, StoreError> {
        check_new(job)?;
        let action = "create a census job";
        let totals = job
            .shard_targets
            .iter()
            .map(|&n| i64::try_from(n))
            .collect::<Result<Vec<i64>, _>>()
            .map_err(|_| StoreError::Unencodable {
                what: Cow::Borrowed("a shard of more than 2^63 targets"),
            })?;
        let mut tx = self.begin(action).await?;
        let scan: Option<i64> = sqlx::query_scalar("SELECT id FROM scans WHERE id = $1")
            .bind(job.scan.0)
            .fetch_optional(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        if scan.is_none() {
            return Err(StoreError::UnknownScan(job.scan));
        }
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO census_jobs (name, scan_id, state, params, shard_count) \
             VALUES ($1, $2, 'running', $3::jsonb, $4) ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(&job.name)
        .bind(job.scan.0)
        .bind(job.params.to_string())
        .bind(totals.len() as i32)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let Some(id) = id else {
            return Err(StoreError::InvalidQuery(Cow::Owned(format!(
                "a census named {:?} exists already; choose another name",
                job.name
            ))));
        };
        sqlx::query(
            "INSERT INTO census_shards (job_id, shard, state, targets_total) \
             SELECT $1, (u.i - 1)::integer, 'pending', u.t \
             FROM unnest($2::bigint[]) WITH ORDINALITY AS u(t, i)",
        )
        .bind(id)
        .bind(&totals)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let created = fetch_job(&mut tx, id).await?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        created.ok_or_else(|| StoreError::corrupt("census_jobs: the new job is missing"))
    }

    async fn job(&self, name: &str) -> Result<Option<CensusJob>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_JOBS} WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read a census job"))?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn jobs(&self) -> Result<Vec<CensusJob>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_JOBS} ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read census jobs"))?;
        rows.iter().map(job_from_row).collect()
    }

    async fn shards(&self, job: i64) -> Result<Vec<ShardRecord>, StoreError> {
        let rows = sqlx::query(&format!("{SELECT_SHARDS} WHERE job_id = $1 ORDER BY shard"))
            .bind(job)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read census shards"))?;
        rows.iter().map(shard_from_row).collect()
    }

    async fn now(&self) -> Result<OffsetDateTime, StoreError> {
        sqlx::query_scalar("SELECT now()")
            .fetch_one(&self.pool)
            .await
            .map_err(StoreError::query(BACKEND, "read the database's clock"))
    }

    async fn claim(
        &self,
        owner: &str,
        lease: Duration,
        only: Option<&str>,
    ) -> Result<Claim, StoreError> {
        check_owner(owner)?;
        let action = "claim census work";
        let secs = lease.as_secs_f64();
        let mut tx = self.begin(action).await?;
        // A finisher that died first: its census is one step from complete.
        let finish: Option<i64> = sqlx::query_scalar(
            "UPDATE census_jobs SET finish_owner = $1, \
             finish_expires = now() + make_interval(secs => $2) \
             WHERE id = (SELECT id FROM census_jobs WHERE state = 'finishing' \
               AND finish_expires < now() AND ($3::text IS NULL OR name = $3) \
               ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING id",
        )
        .bind(owner)
        .bind(secs)
        .bind(only)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        if let Some(id) = finish {
            let job = fetch_job(&mut tx, id).await?;
            tx.commit()
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            return job
                .map(Claim::Finish)
                .ok_or_else(|| StoreError::corrupt("census_jobs: a claimed job is missing"));
        }
        // SKIP LOCKED: concurrent claims pass over a shard another claim is taking, so no two
        // workers get the same one and none waits for another.
        let row = sqlx::query(
            "UPDATE census_shards SET state = 'leased', lease_owner = $1, \
             lease_expires = now() + make_interval(secs => $2), heartbeat_at = now(), \
             leases = leases + 1, started_at = COALESCE(started_at, now()) \
             WHERE (job_id, shard) = (SELECT s.job_id, s.shard FROM census_shards s \
               JOIN census_jobs j ON j.id = s.job_id \
               WHERE j.state = 'running' AND ($3::text IS NULL OR j.name = $3) \
                 AND (s.state = 'pending' OR (s.state = 'leased' AND s.lease_expires < now())) \
               ORDER BY s.job_id, s.shard LIMIT 1 FOR UPDATE OF s SKIP LOCKED) \
             RETURNING job_id, shard, checkpoint::text AS checkpoint, targets_done, leases",
        )
        .bind(owner)
        .bind(secs)
        .bind(only)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        let Some(row) = row else {
            let outstanding: i64 = sqlx::query_scalar(
                "SELECT (SELECT count(*) FROM census_shards s JOIN census_jobs j \
                   ON j.id = s.job_id WHERE j.state = 'running' AND s.state <> 'done' \
                   AND ($1::text IS NULL OR j.name = $1)) \
                 + (SELECT count(*) FROM census_jobs WHERE state = 'finishing' \
                   AND ($1::text IS NULL OR name = $1))",
            )
            .bind(only)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
            tx.commit()
                .await
                .map_err(StoreError::query(BACKEND, action))?;
            return Ok(Claim::Idle {
                outstanding: u64::try_from(outstanding).unwrap_or(0),
            });
        };
        let job_id: i64 = get(&row, "job_id")?;
        let job = fetch_job(&mut tx, job_id)
            .await?
            .ok_or_else(|| StoreError::corrupt("census_jobs: a claimed job is missing"))?;
        let live = live_leases(&mut tx, job_id).await?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        Ok(Claim::Shard(ShardLease {
            job,
            shard: unsigned(get::<i32>(&row, "shard")?, "census_shards.shard")?,
            checkpoint: json(get(&row, "checkpoint")?, "census_shards.checkpoint")?,
            targets_done: unsigned(
                get::<i64>(&row, "targets_done")?,
                "census_shards.targets_done",
            )?,
            live_leases: live,
            leases: unsigned(get::<i32>(&row, "leases")?, "census_shards.leases")?,
        }))
    }

    async fn heartbeat(
        &self,
        shard: ShardKey,
        owner: &str,
        lease: Duration,
        progress: &ShardProgress,
    ) -> Result<Beat, StoreError> {
        let action = "heartbeat a census shard";
        let mut tx = self.begin(action).await?;
        // Only the holder writes: a worker whose lease was taken over changes nothing.
        let held = sqlx::query(
            "UPDATE census_shards SET lease_expires = now() + make_interval(secs => $4), \
             heartbeat_at = now(), checkpoint = $5::jsonb, targets_done = $6 \
             WHERE job_id = $1 AND shard = $2 AND state = 'leased' AND lease_owner = $3",
        )
        .bind(shard.job)
        .bind(shard.shard as i32)
        .bind(owner)
        .bind(lease.as_secs_f64())
        .bind(progress.checkpoint.to_string())
        .bind(count(progress.targets_done))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?
        .rows_affected()
            == 1;
        if !held {
            return Ok(Beat::Lost);
        }
        let state: String = sqlx::query_scalar("SELECT state FROM census_jobs WHERE id = $1")
            .bind(shard.job)
            .fetch_one(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        let live = live_leases(&mut tx, shard.job).await?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        Ok(Beat::Held {
            job_state: job_state(&state)?,
            live_leases: live,
        })
    }

    async fn release(
        &self,
        shard: ShardKey,
        owner: &str,
        progress: &ShardProgress,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE census_shards SET state = 'pending', lease_expires = NULL, \
             heartbeat_at = now(), checkpoint = $4::jsonb, targets_done = $5 \
             WHERE job_id = $1 AND shard = $2 AND state = 'leased' AND lease_owner = $3",
        )
        .bind(shard.job)
        .bind(shard.shard as i32)
        .bind(owner)
        .bind(progress.checkpoint.to_string())
        .bind(count(progress.targets_done))
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "release a census shard"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(
        &self,
        shard: ShardKey,
        owner: &str,
        lease: Duration,
        progress: &ShardProgress,
    ) -> Result<Completion, StoreError> {
        let action = "complete a census shard";
        let mut tx = self.begin(action).await?;
        // Completions of one job take turns on its row, so that of two workers finishing the
        // last two shards at once, the second sees the first's shard done and only it finishes.
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM census_jobs WHERE id = $1 FOR UPDATE")
                .bind(shard.job)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
        let Some(state) = state else {
            return Ok(Completion::Lost);
        };
        let held = sqlx::query(
            "UPDATE census_shards SET state = 'done', lease_expires = NULL, \
             heartbeat_at = now(), finished_at = now(), checkpoint = $4::jsonb, \
             targets_done = $5 \
             WHERE job_id = $1 AND shard = $2 AND state = 'leased' AND lease_owner = $3",
        )
        .bind(shard.job)
        .bind(shard.shard as i32)
        .bind(owner)
        .bind(progress.checkpoint.to_string())
        .bind(count(progress.targets_done))
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?
        .rows_affected()
            == 1;
        if !held {
            return Ok(Completion::Lost);
        }
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM census_shards WHERE job_id = $1 AND state <> 'done'",
        )
        .bind(shard.job)
        .fetch_one(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        // A paused job whose last shard got done is complete all the same; a cancelled one
        // stays unfinished, as its operator asked.
        let last = left == 0 && matches!(job_state(&state)?, JobState::Running | JobState::Paused);
        if last {
            sqlx::query(
                "UPDATE census_jobs SET state = 'finishing', finish_owner = $2, \
                 finish_expires = now() + make_interval(secs => $3) WHERE id = $1",
            )
            .bind(shard.job)
            .bind(owner)
            .bind(lease.as_secs_f64())
            .execute(&mut *tx)
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        }
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        Ok(if last {
            Completion::Last
        } else {
            Completion::Done
        })
    }

    async fn finished(&self, job: i64, owner: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE census_jobs SET state = 'finished', finished_at = now(), \
             finish_owner = NULL, finish_expires = NULL \
             WHERE id = $1 AND state = 'finishing' AND finish_owner = $2",
        )
        .bind(job)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(StoreError::query(BACKEND, "mark a census finished"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn control(&self, name: &str, order: Control) -> Result<Option<JobState>, StoreError> {
        let action = "change a census job's state";
        let mut tx = self.begin(action).await?;
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, state FROM census_jobs WHERE name = $1 FOR UPDATE")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::query(BACKEND, action))?;
        let Some((id, state)) = row else {
            return Ok(None);
        };
        let state = job_state(&state)?;
        let next = next_state(state, order).ok_or_else(|| {
            StoreError::InvalidQuery(Cow::Owned(format!(
                "census {name:?} is {}; it cannot be {}",
                state.as_str(),
                match order {
                    Control::Pause => "paused",
                    Control::Resume => "resumed",
                    Control::Cancel => "cancelled",
                }
            )))
        })?;
        // A pause starts its clock once (repeating it changes nothing); leaving the pause,
        // by resume or cancel, adds its length to the total.
        sqlx::query(
            "UPDATE census_jobs SET state = $2, \
             paused_seconds = paused_seconds + CASE WHEN paused_at IS NOT NULL AND $2 <> 'paused' \
               THEN greatest(extract(epoch FROM now() - paused_at)::float8, 0) ELSE 0 END, \
             paused_at = CASE WHEN $2 = 'paused' THEN coalesce(paused_at, now()) END \
             WHERE id = $1",
        )
        .bind(id)
        .bind(next.as_str())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::query(BACKEND, action))?;
        tx.commit()
            .await
            .map_err(StoreError::query(BACKEND, action))?;
        Ok(Some(next))
    }
}

/// The state an order leads to, or `None` when the state does not allow it. Repeating an
/// order is allowed and changes nothing.
fn next_state(state: JobState, order: Control) -> Option<JobState> {
    use JobState::*;
    match (order, state) {
        (Control::Pause, Running | Paused) => Some(Paused),
        (Control::Resume, Running | Paused) => Some(Running),
        (Control::Cancel, Running | Paused | Cancelled) => Some(Cancelled),
        _ => None,
    }
}

async fn fetch_job(conn: &mut PgConnection, id: i64) -> Result<Option<CensusJob>, StoreError> {
    let row = sqlx::query(&format!("{SELECT_JOBS} WHERE id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await
        .map_err(StoreError::query(BACKEND, "read a census job"))?;
    row.as_ref().map(job_from_row).transpose()
}

async fn live_leases(conn: &mut PgConnection, job: i64) -> Result<u32, StoreError> {
    let n: i64 = sqlx::query_scalar(LIVE_LEASES)
        .bind(job)
        .fetch_one(conn)
        .await
        .map_err(StoreError::query(BACKEND, "count live leases"))?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn job_from_row(row: &PgRow) -> Result<CensusJob, StoreError> {
    let state: String = get(row, "state")?;
    Ok(CensusJob {
        id: get(row, "id")?,
        name: get(row, "name")?,
        scan: ScanId(get(row, "scan_id")?),
        state: job_state(&state)?,
        params: json(get(row, "params")?, "census_jobs.params")?
            .ok_or_else(|| StoreError::corrupt("census_jobs.params"))?,
        shards: unsigned(get::<i32>(row, "shard_count")?, "census_jobs.shard_count")?,
        created_at: get(row, "created_at")?,
        finished_at: get(row, "finished_at")?,
        paused_at: get(row, "paused_at")?,
        paused_seconds: get(row, "paused_seconds")?,
    })
}

fn shard_from_row(row: &PgRow) -> Result<ShardRecord, StoreError> {
    let state: String = get(row, "state")?;
    Ok(ShardRecord {
        shard: unsigned(get::<i32>(row, "shard")?, "census_shards.shard")?,
        state: ShardState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("census_shards.state"))?,
        owner: get(row, "lease_owner")?,
        lease_expires: get(row, "lease_expires")?,
        heartbeat_at: get(row, "heartbeat_at")?,
        checkpoint: json(get(row, "checkpoint")?, "census_shards.checkpoint")?,
        targets_total: unsigned(
            get::<i64>(row, "targets_total")?,
            "census_shards.targets_total",
        )?,
        targets_done: unsigned(
            get::<i64>(row, "targets_done")?,
            "census_shards.targets_done",
        )?,
        leases: unsigned(get::<i32>(row, "leases")?, "census_shards.leases")?,
        started_at: get(row, "started_at")?,
        finished_at: get(row, "finished_at")?,
    })
}

fn job_state(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s).ok_or_else(|| StoreError::corrupt("census_jobs.state"))
}

fn json(text: Option<String>, what: &'static str) -> Result<Option<serde_json::Value>, StoreError> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| StoreError::corrupt(what)))
        .transpose()
}

fn unsigned<T, U>(value: T, what: &'static str) -> Result<U, StoreError>
where
    U: TryFrom<T>,
{
    U::try_from(value).map_err(|_| StoreError::corrupt(what))
}

/// Counts above what BIGINT holds are clamped: they are progress figures, not keys.
fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn check_owner(owner: &str) -> Result<(), StoreError> {
    if owner.is_empty() || owner.contains('\0') {
        return Err(StoreError::InvalidQuery(Cow::Borrowed(
            "a worker needs a name without NUL characters",
        )));
    }
    Ok(())
}

fn get<'r, T>(row: &'r PgRow, column: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|_| StoreError::corrupt(format!("census column {column}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_move_jobs_only_where_they_may() {
        use JobState::*;
        let cases = [
            (Running, Control::Pause, Some(Paused)),
            (Paused, Control::Pause, Some(Paused)),
            (Paused, Control::Resume, Some(Running)),
            (Running, Control::Resume, Some(Running)),
            (Cancelled, Control::Resume, None),
            (Finished, Control::Pause, None),
            (Finishing, Control::Cancel, None),
            (Paused, Control::Cancel, Some(Cancelled)),
            (Cancelled, Control::Cancel, Some(Cancelled)),
        ];
        for (state, order, expected) in cases {
            assert_eq!(next_state(state, order), expected, "{state:?} {order:?}");
        }
    }
}
