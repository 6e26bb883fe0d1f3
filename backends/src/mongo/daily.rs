//! The cluster's month-to-date users recorded per day (the largest figure of a day is kept).

use super::*;

impl MongoStore {
    /// Raises the figure of `day` of `month` to `users` (compare-and-set: agents may race).
    pub(super) async fn raise_daily(
        &self,
        month: Month,
        day: u32,
        users: u64,
    ) -> Result<(), StoreError> {
        crate::rules::check_day(KIND, day)?;
        let db = |e: mongodb::error::Error| unavailable(e.to_string()).because(e);
        let id = i64::from(month.yyyymm());
        let field = format!("days.{day}");
        let users = i64::try_from(users).unwrap_or(i64::MAX);
        // Compare-and-set: raise the day's figure only from the value read (agents may race).
        for _ in 0..16 {
            let stored = self.daily.find_one(doc! { "_id": id }).await.map_err(db)?;
            let Some(stored) = stored else {
                let created = doc! { "_id": id, "days": { day.to_string(): users } };
                match self.daily.insert_one(created).await {
                    Ok(_) => return Ok(()),
                    Err(e) if is_duplicate_key(&e) => continue,
                    Err(e) => return Err(db(e)),
                }
            };
            let old = stored
                .get_document("days")
                .ok()
                .and_then(|d| d.get(day.to_string()))
                .and_then(|v| match v {
                    mongodb::bson::Bson::Int64(v) => Some(*v),
                    mongodb::bson::Bson::Int32(v) => Some(i64::from(*v)),
                    _ => None,
                });
            if old.is_some_and(|old| old >= users) {
                return Ok(());
            }
            let filter = match old {
                Some(old) => doc! { "_id": id, &field: old },
                None => doc! { "_id": id, &field: { "$exists": false } },
            };
            let updated = self
                .daily
                .update_one(filter, doc! { "$set": { &field: users } })
                .await
                .map_err(db)?;
            if updated.matched_count == 1 {
                return Ok(());
            }
        }
        Err(unavailable("the daily figure kept changing; try again"))
    }

    /// The figures recorded for the days of `month`.
    pub(super) async fn read_daily(
        &self,
        month: Month,
    ) -> Result<std::collections::BTreeMap<u32, u64>, StoreError> {
        let stored = self
            .daily
            .find_one(doc! { "_id": i64::from(month.yyyymm()) })
            .await
            .map_err(|e| unavailable(e.to_string()).because(e))?;
        let mut out = std::collections::BTreeMap::new();
        if let Some(days) = stored.as_ref().and_then(|d| d.get_document("days").ok()) {
            for (day, _) in days {
                let day: u32 = day
                    .parse()
                    .map_err(|_| corrupt(format!("daily users of {month}: day {day}")))?;
                out.insert(day, int(days, &day.to_string())?.max(0) as u64);
            }
        }
        Ok(out)
    }
}
