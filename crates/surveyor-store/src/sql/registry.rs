//! [`RegistryStore`] and [`TokenStore`] for both backends: the organisations registry, API
//! tokens and the export log.

use surveyor_model::Organisation;
use time::OffsetDateTime;

use super::{get, values, Exec, Flavour, Native, Sql, SqlStore};
use crate::rows;
use crate::{
    ExportOutcome, ExportRecord, NewExport, RegistryImport, RegistryStore, Role, StoreError,
    StoredExport, TokenRecord, TokenStore,
};

#[async_trait::async_trait]
impl<F: Exec> RegistryStore for SqlStore<F> {
    async fn replace_registry(
        &self,
        organisations: &[Organisation],
        source: &str,
        imported_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let rows = rows::organisation_rows(organisations)?;
        let action = "replace the registry";
        let mut tx = self.begin(action).await?;
        F::execute(&mut tx, &Sql::new("DELETE FROM organisations"), action).await?;
        for chunk in rows.chunks(rows::INSERT_CHUNK) {
            let mut insert = Sql::new(format!(
                "INSERT INTO organisations (id, name, sector, body) VALUES {}",
                values(chunk.len(), &["", "", "", F::JSON_PARAM])
            ));
            for (id, name, sector, body) in chunk {
                insert = insert
                    .bind(*id)
                    .bind(*name)
                    .bind(*sector)
                    .bind(body.as_str());
            }
            F::execute(&mut tx, &insert, action).await?;
        }
        let import = Sql::new(
            "INSERT INTO registry_imports (imported_at, source, organisations) VALUES ($1, $2, $3)",
        )
        .bind(Native::Time(imported_at, "the import time"))
        .bind(source)
        .bind(rows.len() as i32);
        F::execute(&mut tx, &import, action).await?;
        tx.commit()
            .await
            .map_err(StoreError::query(F::BACKEND, action))
    }

    async fn organisations(&self) -> Result<Vec<Organisation>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT {} AS body FROM organisations ORDER BY id",
            F::json_text("body")
        ));
        let rows = self.all(&sql, "read the registry").await?;
        rows.iter()
            .map(|row| rows::organisation_from_json(&get::<String>(row, "body")?))
            .collect()
    }

    async fn last_import(&self) -> Result<Option<RegistryImport>, StoreError> {
        let sql = Sql::new(
            "SELECT imported_at, source, organisations FROM registry_imports \
             ORDER BY id DESC LIMIT 1",
        );
        let row = self.optional(&sql, "read the registry imports").await?;
        row.map(|row| {
            Ok(RegistryImport {
                imported_at: F::time(&row, "imported_at")?
                    .ok_or_else(|| StoreError::corrupt("registry_imports.imported_at"))?,
                source: get(&row, "source")?,
                organisations: u64::try_from(get::<i32>(&row, "organisations")?)
                    .map_err(|_| StoreError::corrupt("registry_imports.organisations"))?,
            })
        })
        .transpose()
    }
}

#[async_trait::async_trait]
impl<F: Exec> TokenStore for SqlStore<F> {
    async fn create_token(
        &self,
        name: &str,
        role: Role,
        token_hash: &str,
        created_at: OffsetDateTime,
    ) -> Result<TokenRecord, StoreError> {
        rows::check_token(name, token_hash)?;
        let created_at = rows::truncate_to_micros(created_at);
        let sql = Sql::new(
            "INSERT INTO api_tokens (name, role, token_hash, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(role.as_str())
        .bind(token_hash)
        .bind(Native::Time(created_at, "the token's creation time"));
        let row = self.one(&sql, "create a token").await?;
        Ok(TokenRecord {
            id: get(&row, "id")?,
            name: name.to_string(),
            role,
            created_at,
            revoked_at: None,
        })
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = Sql::new(
            "SELECT id, name, role, created_at, revoked_at FROM api_tokens WHERE token_hash = $1",
        )
        .bind(token_hash);
        let row = self.optional(&sql, "look up a token").await?;
        row.map(|row| token_from_row::<F>(&row)).transpose()
    }

    async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let sql =
            Sql::new("SELECT id, name, role, created_at, revoked_at FROM api_tokens ORDER BY id");
        let rows = self.all(&sql, "list tokens").await?;
        rows.iter().map(token_from_row::<F>).collect()
    }

    async fn revoke_token(&self, id: i64, at: OffsetDateTime) -> Result<bool, StoreError> {
        let sql =
            Sql::new("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id)
                .bind(Native::Time(at, "the revocation time"));
        Ok(self.execute(&sql, "revoke a token").await? == 1)
    }

    async fn begin_export(&self, export: &NewExport) -> Result<i64, StoreError> {
        let filter = serde_json::to_string(&export.filter)
            .map_err(|_| StoreError::corrupt("an export's filter"))?;
        let sql = Sql::new(format!(
            "INSERT INTO export_audit (started_at, token_id, token_name, role, scan_id, format, \
             pseudonymised, filter, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8{}, 'running') RETURNING id",
            F::JSON_PARAM
        ))
        .bind(Native::Time(export.started_at, "the export's start"))
        .bind(export.token.id)
        .bind(export.token.name.as_str())
        .bind(export.token.role.as_str())
        .bind(export.scan)
        .bind(export.format.as_str())
        .bind(export.pseudonymised)
        .bind(filter);
        let row = self.one(&sql, "log an export").await?;
        get(&row, "id")
    }

    async fn finish_export(
        &self,
        id: i64,
        rows: u64,
        outcome: ExportOutcome,
        at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let sql = Sql::new(
            "UPDATE export_audit SET rows = $2, outcome = $3, finished_at = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(i64::try_from(rows).unwrap_or(i64::MAX))
        .bind(outcome.as_str())
        .bind(Native::Time(at, "the export's end"));
        self.execute(&sql, "close an export's log entry").await?;
        Ok(())
    }

    async fn exports(&self, limit: u32) -> Result<Vec<ExportRecord>, StoreError> {
        let sql = Sql::new(format!(
            "SELECT id, started_at, finished_at, token_id, token_name, role, scan_id, format, \
             pseudonymised, {} AS filter, rows, outcome FROM export_audit \
             ORDER BY started_at DESC, id DESC LIMIT $1",
            F::json_text("filter")
        ))
        .bind(i64::from(limit));
        let rows = self.all(&sql, "read the export log").await?;
        rows.iter()
            .map(|row| {
                StoredExport {
                    id: get(row, "id")?,
                    started_at: F::time(row, "started_at")?
                        .ok_or_else(|| StoreError::corrupt("export_audit time"))?,
                    finished_at: F::time(row, "finished_at")?,
                    token_id: get(row, "token_id")?,
                    token_name: get(row, "token_name")?,
                    role: get(row, "role")?,
                    scan_id: get(row, "scan_id")?,
                    format: get(row, "format")?,
                    pseudonymised: get(row, "pseudonymised")?,
                    filter: get(row, "filter")?,
                    rows: get(row, "rows")?,
                    outcome: get(row, "outcome")?,
                }
                .into_model()
            })
            .collect()
    }
}

fn token_from_row<F: Flavour>(row: &F::Row) -> Result<TokenRecord, StoreError> {
    let role: String = get(row, "role")?;
    Ok(TokenRecord {
        id: get(row, "id")?,
        name: get(row, "name")?,
        role: role
            .parse()
            .map_err(|_| StoreError::corrupt("api_tokens.role"))?,
        created_at: F::time(row, "created_at")?
            .ok_or_else(|| StoreError::corrupt("api_tokens.created_at"))?,
        revoked_at: F::time(row, "revoked_at")?,
    })
}
