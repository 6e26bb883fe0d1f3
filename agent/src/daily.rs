//! The cluster's month-to-date active users, recorded once in a while for each day (the
//! dashboard compares this month with the same day of the month before: a past month's
//! month-to-date figure cannot be computed from its monthly HLLs afterwards).

use std::sync::Arc;
use std::time::Duration;

use authstat_core::Month;
use authstat_core::store::{StatStore, StoreError};
use tracing::debug;

use authstat_core::month::{day_of_month, now_ms};

/// How often the figure is recorded (the largest of a day is kept, so the last recording of
/// a day stands for the whole day).
pub(crate) const EVERY: Duration = Duration::from_secs(900);

/// Records the current month's users over all nodes for today; returns what it recorded.
pub async fn once(store: &dyn StatStore) -> Result<(Month, u32, u64), StoreError> {
    let now = now_ms();
    let month = Month::from_epoch_millis(now).expect("the clock is within years 0-9999");
    let users = store
        .read_months(&[month])
        .await?
        .first()
        .map_or(0, authstat_core::MonthStats::monthly_active_users);
    let day = day_of_month(now);
    store.record_daily_users(month, day, users).await?;
    Ok((month, day, users))
}

use authstat_core::dims::first_kept_month;

/// Records now and every [`EVERY`] until the agent stops; failures wait for the next turn. The
/// days older than `retention_days` are removed at start and whenever a month falls out.
pub async fn run(store: Arc<dyn StatStore>, retention_days: u32) {
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut kept_from: Option<Month> = None;
    loop {
        tick.tick().await;
        match once(store.as_ref()).await {
            Ok((month, day, users)) => debug!(%month, day, users, "daily users recorded"),
            Err(e) => debug!(error = %e, "daily users not recorded; trying again later"),
        }
        let first = first_kept_month(now_ms(), retention_days);
        if kept_from != Some(first) {
            match store.drop_days_before(first).await {
                Ok(dropped) => {
                    debug!(%first, dropped, "days before the retention removed");
                    kept_from = Some(first);
                }
                Err(e) => debug!(error = %e, "old days not removed; trying again later"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_the_retention_is_kept() {
        // 2025-02-04: 400 days back is 2024-01-01, so January 2024 is the first month kept.
        let today = 1_738_627_200_000;
        assert_eq!(first_kept_month(today, 400).to_string(), "202401");
        assert_eq!(first_kept_month(today, 31).to_string(), "202501");
    }

    #[tokio::test]
    async fn today_is_recorded_with_the_cluster_figure() {
        let store = authstat_backends::memory::MemoryStore::new();
        let (month, day, users) = once(&store).await.unwrap();
        assert_eq!(users, 0);
        assert_eq!(day, day_of_month(now_ms()));
        assert_eq!(store.daily_users(month).await.unwrap()[&day], 0);
        assert_eq!(day_of_month(1_706_745_600_000), 1, "2024-02-01");
        assert_eq!(
            day_of_month(1_709_251_199_999),
            29,
            "2024-02-29 23:59:59.999"
        );
    }
}
