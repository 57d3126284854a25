//! [`CensusStore`] for both backends: the census read side.

use std::net::IpAddr;

use surveyor_model::ExchangeServer;

use super::{get, Column, Exec, Flavour, Sql, SqlStore, SELECT_SCANS};
use crate::census;
use crate::rows;
use crate::{
    CensusFilter, CensusGroup, CensusStore, Dimension, HostDetail, Judgements, ScanId, ScanRecord,
    ServerCursor, ServersPage, StoreError, TrendPoint,
};

#[async_trait::async_trait]
impl<F: Exec> CensusStore for SqlStore<F> {
    async fn latest_finished_scan(&self) -> Result<Option<ScanRecord>, StoreError> {
        let sql = format!(
            "{SELECT_SCANS} WHERE s.finished_at IS NOT NULL AND {} \
             ORDER BY s.finished_at DESC, s.id DESC LIMIT 1",
            census::DEFAULT_JUDGEMENT
        );
        Ok(self.fetch_scans(&Sql::new(sql)).await?.into_iter().next())
    }

    async fn exchange_servers(&self, scan: ScanId) -> Result<Vec<ExchangeServer>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT id, {} AS ip, port, exchange_family, exchange_build, exchange_support \
             FROM observations WHERE scan_id = $1 AND exchange_family IS NOT NULL \
             ORDER BY observations.ip, port",
            F::ip_text("ip")
        ))
        .bind(scan);
        let rows = self.all(&sql, "read exchange servers").await?;
        if rows.is_empty() {
            self.readable(scan).await?;
        }
        let mut servers = rows
            .iter()
            .map(|row| {
                rows::exchange_server(rows::ServerColumns {
                    id: get(row, "id")?,
                    ip: &get::<String>(row, "ip")?,
                    port: i64::from(get::<i32>(row, "port")?),
                    family: &get::<String>(row, "exchange_family")?,
                    build: &get::<String>(row, "exchange_build")?,
                    support: &get::<String>(row, "exchange_support")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // SQLite's text addresses do not sort numerically.
        servers.sort_by_key(|s| (s.ip, s.port));
        Ok(servers)
    }

    async fn statistics(
        &self,
        scan: ScanId,
        group_by: &[Dimension],
        filter: &CensusFilter,
    ) -> Result<Vec<CensusGroup>, StoreError> {
        let state = self.scan_state(scan).await?;
        let live = census::needs_observations(group_by, filter);
        if live && state.pruned {
            return Err(StoreError::ScanPruned(scan));
        }
        let sql = census::statistics(&F::DIALECT, scan, state.finished && !live, group_by, filter);
        let rows = self.all(&sql, "count the census").await?;
        rows.iter()
            .map(|row| group_from_row::<F>(row, group_by, 0))
            .collect()
    }

    async fn trend_of(
        &self,
        group_by: &[Dimension],
        filter: &CensusFilter,
        which: Judgements,
    ) -> Result<Vec<TrendPoint>, StoreError> {
        if census::needs_observations(group_by, filter) {
            return Err(StoreError::InvalidQuery(
                "a trend cannot be counted by organisation; count one scan by organisation".into(),
            ));
        }
        let sql = census::trend(&F::DIALECT, group_by, filter, which);
        let rows = self.all(&sql, "count the census trend").await?;
        let scans = crate::ScanStore::scans(self).await?;
        rows.iter()
            .map(|row| {
                let id = ScanId(get(row, "scan_id")?);
                let group = group_from_row::<F>(row, group_by, 1)?;
                census::trend_point(&scans, id, group)
            })
            .collect()
    }

    async fn servers_page(
        &self,
        scan: ScanId,
        filter: &CensusFilter,
        after: Option<ServerCursor>,
        limit: u32,
    ) -> Result<ServersPage, StoreError> {
        self.readable(scan).await?;
        let sql = census::servers_page(
            &F::DIALECT,
            F::SELECT_OBSERVATIONS,
            scan,
            filter,
            after,
            limit,
        );
        let rows = self.all(&sql, "read a page of servers").await?;
        let rows = self.observations_of(&rows).await?;
        Ok(census::page_from_rows(rows, limit))
    }

    async fn host(&self, ip: IpAddr) -> Result<HostDetail, StoreError> {
        let action = "read a host";
        let sql = Sql::new(format!(
            "SELECT {} AS ip, port, first_seen, last_seen, last_scan_id, status, \
             exchange_family, exchange_build, exchange_support FROM hosts \
             WHERE ip = $1 ORDER BY port",
            F::ip_text("ip")
        ))
        .bind(ip);
        let rows = self.all(&sql, action).await?;
        let ports = rows
            .iter()
            .map(|row| {
                let seen = |column: &'static str| {
                    F::time(row, column)?
                        .ok_or_else(|| StoreError::corrupt(format!("hosts.{column}")))
                };
                rows::StoredHost {
                    ip: get(row, "ip")?,
                    port: i64::from(get::<i32>(row, "port")?),
                    first_seen: seen("first_seen")?,
                    last_seen: seen("last_seen")?,
                    last_scan: get(row, "last_scan_id")?,
                    status: get(row, "status")?,
                    family: get(row, "exchange_family")?,
                    build: get(row, "exchange_build")?,
                    support: get(row, "exchange_support")?,
                }
                .into_model()
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // One descent of the key (scan_id, ip, port) per scan (the address index is gone:
        // PostgreSQL migration 0011, SQLite 0010): a few hundred scans cost a few hundred
        // index probes.
        let scans = format!("SELECT id FROM scans s WHERE {}", census::DEFAULT_JUDGEMENT);
        let sql = Sql::new(format!(
            "{} WHERE {} AND o.ip = $1 \
             ORDER BY (SELECT started_at FROM scans WHERE id = o.scan_id), o.scan_id, o.port",
            F::SELECT_OBSERVATIONS,
            F::in_subquery("o.scan_id", &scans)
        ))
        .bind(ip);
        let rows = self.all(&sql, action).await?;
        let history = rows
            .iter()
            .zip(self.observations_of(&rows).await?)
            .map(|(row, (_, observation))| Ok((ScanId(get(row, "scan_id")?), observation)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(HostDetail { ip, ports, history })
    }
}

/// The dimension columns of a census row, which start at column `first`, then `servers`.
fn group_from_row<F: Flavour>(
    row: &F::Row,
    group_by: &[Dimension],
    first: usize,
) -> Result<CensusGroup, StoreError> {
    let values = (first..first + group_by.len())
        .map(|i| {
            Column::<Option<String>>::column_at(row, i)
                .map_err(|_| StoreError::corrupt("census dimension"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    census::group_from_texts(group_by, values, get(row, "servers")?)
}
