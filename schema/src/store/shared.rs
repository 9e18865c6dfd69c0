//! The store operations that read the same on every backend, written once.
//!
//! Diesel's async query methods need the concrete connection type to
//! resolve, and bounds generic over both connections do not compile (see
//! DEPENDENCIES.md), so the shared bodies are expanded per backend by this
//! macro. A backend provides `conn()`, `insert_rows()` (the one operation
//! that genuinely differs) and its `Store` impl; this writes the rest.

/// Implements `ReadingStore` and `UserStore` for `$store` on diesel backend
/// `$backend`.
macro_rules! diesel_store {
    ($store:ty, $backend:ty) => {
        impl $store {
            /// The next chunk of ids matching `filter`'s conditions after `last`.
            async fn matching_ids(
                &self,
                filter: &$crate::filter::ReadingFilter,
                last: i64,
            ) -> Result<Vec<i64>, $crate::store::StoreError> {
                use diesel::{ExpressionMethods, QueryDsl};
                use diesel_async::RunQueryDsl;
                use $crate::db::sensor_data;
                let mut conn = self.conn().await?;
                let ids = $crate::store::query::filter_conditions(
                    sensor_data::table.into_boxed::<$backend>(),
                    filter,
                )
                .select(sensor_data::id)
                .filter(sensor_data::id.gt(last))
                .order(sensor_data::id.asc())
                .limit($crate::store::WRITE_CHUNK)
                .load(&mut conn)
                .await?;
                Ok(ids)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::ReadingStore for $store {
            async fn insert_batch(
                &self,
                readings: &[$crate::reading::Reading],
            ) -> Result<$crate::store::InsertOutcome, $crate::store::StoreError> {
                if readings.is_empty() {
                    return Ok($crate::store::InsertOutcome::default());
                }
                let inserted = self.insert_rows(readings).await?;
                Ok($crate::store::InsertOutcome {
                    inserted,
                    duplicate: readings.len() as u64 - inserted,
                })
            }

            async fn query(
                &self,
                filter: &$crate::filter::ReadingFilter,
            ) -> Result<Vec<$crate::store::StoredReading>, $crate::store::StoreError> {
                use diesel::QueryDsl;
                use diesel_async::RunQueryDsl;
                let mut conn = self.conn().await?;
                let rows: Vec<$crate::store::rows::ReadingRow> =
                    $crate::store::query::filtered_readings::<$backend>(filter)
                        .limit(i64::from(filter.limit()))
                        .offset(i64::try_from(filter.offset()).unwrap_or(i64::MAX))
                        .load(&mut conn)
                        .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn get(
                &self,
                id: i64,
            ) -> Result<Option<$crate::store::StoredReading>, $crate::store::StoreError> {
                use diesel::{OptionalExtension, QueryDsl};
                use diesel_async::RunQueryDsl;
                let mut conn = self.conn().await?;
                let row: Option<$crate::store::rows::ReadingRow> = $crate::db::sensor_data::table
                    .find(id)
                    .first(&mut conn)
                    .await
                    .optional()?;
                Ok(row.map(Into::into))
            }

            async fn count(
                &self,
                filter: &$crate::filter::ReadingFilter,
            ) -> Result<u64, $crate::store::StoreError> {
                use diesel::QueryDsl;
                use diesel_async::RunQueryDsl;
                let mut conn = self.conn().await?;
                let n: i64 = $crate::store::query::filter_conditions(
                    $crate::db::sensor_data::table.into_boxed::<$backend>(),
                    filter,
                )
                .count()
                .get_result(&mut conn)
                .await?;
                Ok(n as u64)
            }

            async fn update_value(
                &self,
                filter: &$crate::filter::ReadingFilter,
                value: f64,
            ) -> Result<u64, $crate::store::StoreError> {
                use diesel::{ExpressionMethods, QueryDsl};
                use diesel_async::RunQueryDsl;
                use $crate::db::sensor_data;
                let now = chrono::Utc::now().naive_utc();
                $crate::store::in_chunks(
                    |last| self.matching_ids(filter, last),
                    |ids| async move {
                        let mut conn = self.conn().await?;
                        let n =
                            diesel::update(sensor_data::table.filter(sensor_data::id.eq_any(ids)))
                                .set((
                                    sensor_data::sensor_value.eq(value),
                                    sensor_data::updated_at.eq(now),
                                ))
                                .execute(&mut conn)
                                .await?;
                        Ok(n as u64)
                    },
                )
                .await
            }

            async fn delete(
                &self,
                filter: &$crate::filter::ReadingFilter,
            ) -> Result<u64, $crate::store::StoreError> {
                use diesel::{ExpressionMethods, QueryDsl};
                use diesel_async::RunQueryDsl;
                use $crate::db::sensor_data;
                $crate::store::in_chunks(
                    |last| self.matching_ids(filter, last),
                    |ids| async move {
                        let mut conn = self.conn().await?;
                        let n =
                            diesel::delete(sensor_data::table.filter(sensor_data::id.eq_any(ids)))
                                .execute(&mut conn)
                                .await?;
                        Ok(n as u64)
                    },
                )
                .await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::UserStore for $store {
            async fn count_users(&self) -> Result<u64, $crate::store::StoreError> {
                use diesel::QueryDsl;
                use diesel_async::RunQueryDsl;
                let mut conn = self.conn().await?;
                let n: i64 = $crate::db::users::table
                    .count()
                    .get_result(&mut conn)
                    .await?;
                Ok(n as u64)
            }

            async fn find_user(
                &self,
                username: &$crate::user::Username,
            ) -> Result<Option<$crate::user::User>, $crate::store::StoreError> {
                use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
                use diesel_async::RunQueryDsl;
                use $crate::db::users;
                let mut conn = self.conn().await?;
                let row: Option<$crate::store::rows::UserRow> = users::table
                    .filter(users::username.eq(username.as_str()))
                    .first(&mut conn)
                    .await
                    .optional()?;
                Ok(row.and_then($crate::store::rows::UserRow::into_user))
            }

            async fn list_users(
                &self,
            ) -> Result<Vec<$crate::user::User>, $crate::store::StoreError> {
                use diesel::{ExpressionMethods, QueryDsl};
                use diesel_async::RunQueryDsl;
                use $crate::db::users;
                let mut conn = self.conn().await?;
                let rows: Vec<$crate::store::rows::UserRow> = users::table
                    .order(users::username.asc())
                    .load(&mut conn)
                    .await?;
                Ok(rows
                    .into_iter()
                    .filter_map($crate::store::rows::UserRow::into_user)
                    .collect())
            }

            async fn delete_user(
                &self,
                username: &$crate::user::Username,
            ) -> Result<bool, $crate::store::StoreError> {
                use diesel::{ExpressionMethods, QueryDsl};
                use diesel_async::RunQueryDsl;
                use $crate::db::users;
                let mut conn = self.conn().await?;
                let n = diesel::delete(users::table.filter(users::username.eq(username.as_str())))
                    .execute(&mut conn)
                    .await?;
                Ok(n > 0)
            }

            async fn create_user(
                &self,
                username: &$crate::user::Username,
                password_hash: &str,
                role: $crate::user::Role,
            ) -> Result<(), $crate::store::StoreError> {
                use diesel::ExpressionMethods;
                use diesel_async::RunQueryDsl;
                use $crate::db::users;
                let mut conn = self.conn().await?;
                diesel::insert_into(users::table)
                    .values((
                        users::username.eq(username.as_str()),
                        users::password_hash.eq(password_hash),
                        users::role.eq(role.as_str()),
                    ))
                    .execute(&mut conn)
                    .await?;
                Ok(())
            }
        }
    };
}

pub(crate) use diesel_store;
